import type { ComponentChildren } from "preact";
import { useEffect, useId, useLayoutEffect, useRef, useState } from "preact/hooks";

import { scrollTopForRow, virtualWindow } from "../lib/virtual";

export interface Column {
  key: string;
  label: string;
  /** A CSS grid track ("10rem", "minmax(8rem, 1fr)"). */
  width: string;
  align?: "end";
}

interface Props<T> {
  columns: Column[];
  total: number;
  rowHeight: number;
  /** The row at `index`, or undefined while its page loads. */
  getRow: (index: number) => T | undefined;
  renderCells: (row: T, index: number) => ComponentChildren[];
  /** Called with the rows to render [start, end) whenever they change. */
  onRange?: (start: number, end: number) => void;
  onActivate?: (row: T, index: number) => void;
  /** Scroll back to the top when this changes (a new selection). */
  resetKey?: string;
  label: string;
  loadingText: string;
  overscan?: number;
  /** Viewport height used until the element can be measured (tests, first paint). */
  fallbackHeight?: number;
  testid?: string;
  rowTestid?: string;
  selectedIndex?: number;
}

/**
 * A table of fixed-height rows where only the visible rows (and a few around
 * them) are in the DOM, so that a million rows scroll like a hundred.
 */
export function VirtualTable<T>(props: Props<T>) {
  const { columns, total, rowHeight, getRow, renderCells, onRange, onActivate, label, loadingText } = props;
  const overscan = props.overscan ?? 8;
  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(props.fallbackHeight ?? 600);
  const [active, setActive] = useState(-1);
  const id = useId();

  // Measure the visible height, and follow resizes.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return undefined;
    const measure = () => {
      const h = el.clientHeight - rowHeight; // minus the sticky header
      if (h > 0) setViewport(h);
    };
    measure();
    if (typeof ResizeObserver === "undefined") return undefined;
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, [rowHeight]);

  useEffect(() => {
    if (scroller.current) scroller.current.scrollTop = 0;
    setScrollTop(0);
    setActive(-1);
  }, [props.resetKey]);

  const win = virtualWindow({ total, rowHeight, viewport, scrollTop, overscan });

  useEffect(() => {
    onRange?.(win.start, win.end);
  }, [win.start, win.end, total]);

  const template = columns.map((c) => c.width).join(" ");

  const moveTo = (index: number) => {
    if (total === 0) return;
    const i = Math.max(0, Math.min(total - 1, index));
    setActive(i);
    const el = scroller.current;
    if (el) {
      const top = scrollTopForRow(i, { total, rowHeight, viewport, scrollTop: el.scrollTop });
      if (Math.abs(top - el.scrollTop) >= 1) {
        el.scrollTop = top;
        setScrollTop(top);
      }
    }
  };

  const onKeyDown = (e: KeyboardEvent) => {
    const page = Math.max(1, Math.floor(viewport / rowHeight) - 1);
    const from = active < 0 ? win.firstVisible - 1 : active;
    switch (e.key) {
      case "ArrowDown":
        moveTo(from + 1);
        break;
      case "ArrowUp":
        moveTo(active < 0 ? win.firstVisible : active - 1);
        break;
      case "PageDown":
        moveTo(from + page);
        break;
      case "PageUp":
        moveTo(from - page);
        break;
      case "Home":
        moveTo(0);
        break;
      case "End":
        moveTo(total - 1);
        break;
      case "Enter":
      case " ": {
        const row = active >= 0 ? getRow(active) : undefined;
        if (row !== undefined && onActivate) onActivate(row, active);
        break;
      }
      default:
        return;
    }
    e.preventDefault();
  };

  const rows: ComponentChildren[] = [];
  for (let i = win.start; i < win.end; i++) {
    const row = getRow(i);
    const top = win.offset + (i - win.start) * rowHeight;
    const classes = ["vt-row", i % 2 ? "odd" : "", i === active ? "active" : "", i === props.selectedIndex ? "selected" : ""]
      .filter(Boolean)
      .join(" ");
    rows.push(
      <div
        key={i}
        id={`${id}-r${i}`}
        role="row"
        aria-rowindex={i + 2}
        aria-selected={i === props.selectedIndex}
        class={classes}
        data-testid={props.rowTestid}
        style={{ top: `${top}px`, height: `${rowHeight}px`, gridTemplateColumns: template }}
        onClick={() => {
          setActive(i);
          if (row !== undefined) onActivate?.(row, i);
        }}
      >
        {row === undefined ? (
          <div role="gridcell" class="vt-cell muted" aria-colspan={columns.length}>
            {loadingText}
          </div>
        ) : (
          renderCells(row, i).map((cell, c) => (
            <div key={c} role="gridcell" class={columns[c]?.align === "end" ? "vt-cell end" : "vt-cell"}>
              {cell}
            </div>
          ))
        )}
      </div>,
    );
  }

  return (
    <div
      ref={scroller}
      class="vt"
      role="grid"
      aria-label={label}
      aria-rowcount={total + 1}
      aria-colcount={columns.length}
      aria-activedescendant={active >= win.start && active < win.end ? `${id}-r${active}` : undefined}
      tabIndex={0}
      data-testid={props.testid}
      onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
      onKeyDown={onKeyDown}
    >
      <div role="row" aria-rowindex={1} class="vt-head" style={{ gridTemplateColumns: template, height: `${rowHeight}px` }}>
        {columns.map((c) => (
          <div key={c.key} role="columnheader" class={c.align === "end" ? "vt-cell end" : "vt-cell"}>
            {c.label}
          </div>
        ))}
      </div>
      <div class="vt-body" role="rowgroup" style={{ height: `${win.scrollHeight}px` }}>
        {rows}
      </div>
    </div>
  );
}
