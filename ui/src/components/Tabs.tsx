import { useRef } from "preact/hooks";

export interface TabItem<K extends string> {
  id: K;
  label: string;
  testid?: string;
}

interface Props<K extends string> {
  items: TabItem<K>[];
  selected: K;
  onSelect: (id: K) => void;
  label: string;
  /** Prefix of the tabs' and panels' ids: tab `${idPrefix}-tab-${id}`, panel `${idPrefix}-panel-${id}`. */
  idPrefix: string;
  variant?: "primary" | "secondary";
}

/** WAI-ARIA tabs: one tab stop, arrows/Home/End move and select. */
export function Tabs<K extends string>({ items, selected, onSelect, label, idPrefix, variant = "primary" }: Props<K>) {
  const refs = useRef<(HTMLButtonElement | null)[]>([]);
  const onKeyDown = (e: KeyboardEvent) => {
    const i = items.findIndex((it) => it.id === selected);
    let next = -1;
    if (e.key === "ArrowRight") next = (i + 1) % items.length;
    else if (e.key === "ArrowLeft") next = (i - 1 + items.length) % items.length;
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = items.length - 1;
    if (next < 0) return;
    e.preventDefault();
    const item = items[next];
    if (!item) return;
    onSelect(item.id);
    refs.current[next]?.focus();
  };
  return (
    <div role="tablist" aria-label={label} class={`tabs tabs-${variant}`} onKeyDown={onKeyDown}>
      {items.map((it, i) => {
        const active = it.id === selected;
        return (
          <button
            key={it.id}
            ref={(el) => {
              refs.current[i] = el;
            }}
            type="button"
            role="tab"
            id={`${idPrefix}-tab-${it.id}`}
            aria-selected={active}
            aria-controls={`${idPrefix}-panel-${it.id}`}
            tabIndex={active ? 0 : -1}
            class={active ? "tab active" : "tab"}
            data-testid={it.testid}
            onClick={() => onSelect(it.id)}
          >
            {it.label}
          </button>
        );
      })}
    </div>
  );
}
