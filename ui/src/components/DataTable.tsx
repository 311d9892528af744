import type { ComponentChildren } from "preact";

export interface DataColumn<T> {
  header: string;
  cell: (row: T, index: number) => ComponentChildren;
  /** Classes of the body cells; a function when they depend on the row. */
  class?: string | ((row: T) => string | undefined);
  /** Numbers line up at the end of the cell, header included. */
  align?: "end";
  /** A tooltip on the body cell (e.g. a country code's full name). */
  title?: (row: T) => string | undefined;
}

interface Props<T> {
  columns: DataColumn<T>[];
  rows: readonly T[];
  rowKey: (row: T, index: number) => string | number;
  /** The row's `data-testid`, which the unit and end-to-end tests look for. */
  rowTestId?: (row: T) => string;
  /** Makes the rows selectable, by click or by keyboard (arrows, Enter, Space). */
  onSelect?: (row: T, index: number) => void;
  /** The key of the selected row, when `onSelect` is given. */
  selectedKey?: string | number | null;
  compact?: boolean;
  /** The wrapper scrolls both ways, with the header staying in sight. */
  scroll?: boolean;
  /** Shown instead of the table when there are no rows. */
  empty?: string;
  emptyClass?: string;
  /** Keep the (headers only) table under the empty message, so that the layout does not jump. */
  headerWhenEmpty?: boolean;
}

/** A plain table of a few hundred rows at most (millions go to VirtualTable). */
export function DataTable<T>(props: Props<T>) {
  const { columns, rows, rowKey, rowTestId, onSelect, selectedKey } = props;
  const isEmpty = rows.length === 0;
  const message = isEmpty && props.empty !== undefined ? <p class={props.emptyClass ?? "muted"}>{props.empty}</p> : null;
  if (message && !props.headerWhenEmpty) return message;

  const onRowKey = (e: KeyboardEvent, i: number) => {
    if (!onSelect) return;
    const trs = (e.currentTarget as HTMLElement).parentElement?.querySelectorAll<HTMLElement>("tr") ?? [];
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      trs[Math.max(0, Math.min(trs.length - 1, i + (e.key === "ArrowDown" ? 1 : -1)))]?.focus();
    } else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      const row = rows[i];
      if (row !== undefined) onSelect(row, i);
    }
  };

  const tableClass = ["table", props.compact && "compact", onSelect && "selectable"].filter(Boolean).join(" ");
  return (
    <>
      {message}
      <div class={props.scroll ? "table-wrap scroll" : "table-wrap"}>
        <table class={tableClass}>
          <thead>
            <tr>
              {columns.map((c, j) => (
                <th scope="col" key={j} class={c.align}>
                  {c.header}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((row, i) => {
              const key = rowKey(row, i);
              const selected = onSelect ? key === selectedKey : undefined;
              return (
                <tr
                  key={key}
                  data-testid={rowTestId?.(row)}
                  tabIndex={onSelect ? 0 : undefined}
                  aria-selected={selected}
                  class={selected ? "selected" : undefined}
                  onClick={onSelect ? () => onSelect(row, i) : undefined}
                  onKeyDown={onSelect ? (e) => onRowKey(e, i) : undefined}
                >
                  {columns.map((c, j) => (
                    <td key={j} class={cellClass(c, row)} title={c.title?.(row)}>
                      {c.cell(row, i)}
                    </td>
                  ))}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </>
  );
}

function cellClass<T>(c: DataColumn<T>, row: T): string | undefined {
  const own = typeof c.class === "function" ? c.class(row) : c.class;
  return [c.align, own].filter(Boolean).join(" ") || undefined;
}
