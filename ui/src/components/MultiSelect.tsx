import { useEffect, useId, useMemo, useRef, useState } from "preact/hooks";

import { useI18n } from "../i18n";

export interface Option {
  value: string;
  label: string;
}

interface Props {
  label: string;
  options: Option[];
  selected: string[];
  onChange: (values: string[]) => void;
  testid?: string;
}

/**
 * A filter button that opens a list of checkboxes. Escape or a click outside
 * closes it; ↑/↓ move between the values; a search box appears for long lists.
 */
export function MultiSelect({ label, options, selected, onChange, testid }: Props) {
  const { t } = useI18n();
  const [open, setOpen] = useState(false);
  const [search, setSearch] = useState("");
  const root = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  const listRef = useRef<HTMLDivElement>(null);
  const searchRef = useRef<HTMLInputElement>(null);
  const id = useId();

  const shown = useMemo(() => {
    const q = search.trim().toLowerCase();
    return q ? options.filter((o) => o.label.toLowerCase().includes(q) || o.value.toLowerCase().includes(q)) : options;
  }, [options, search]);

  useEffect(() => {
    if (!open) return undefined;
    const onDown = (e: MouseEvent) => {
      if (root.current && !root.current.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener("mousedown", onDown);
    // Focus the search box, or the first value.
    const first = searchRef.current ?? listRef.current?.querySelector<HTMLInputElement>("input[type=checkbox]");
    first?.focus();
    return () => document.removeEventListener("mousedown", onDown);
  }, [open]);

  const toggle = (value: string) => {
    onChange(selected.includes(value) ? selected.filter((v) => v !== value) : [...selected, value]);
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === "Escape" && open) {
      e.preventDefault();
      e.stopPropagation();
      setOpen(false);
      button.current?.focus();
      return;
    }
    if (!open || (e.key !== "ArrowDown" && e.key !== "ArrowUp")) return;
    const boxes = [...(listRef.current?.querySelectorAll<HTMLInputElement>("input[type=checkbox]") ?? [])];
    const focusables: HTMLElement[] = searchRef.current ? [searchRef.current, ...boxes] : boxes;
    const i = focusables.indexOf(document.activeElement as HTMLElement);
    const next = e.key === "ArrowDown" ? Math.min(focusables.length - 1, i + 1) : Math.max(0, i - 1);
    focusables[next]?.focus();
    e.preventDefault();
  };

  const summary = selected.length ? t("filters.selected", { label, n: selected.length }) : label;
  return (
    <div class="multiselect" ref={root} data-testid={testid} onKeyDown={onKeyDown}>
      <button
        ref={button}
        type="button"
        class={selected.length ? "btn btn-filter active" : "btn btn-filter"}
        aria-expanded={open}
        aria-controls={`${id}-pop`}
        onClick={() => setOpen(!open)}
      >
        {summary}
        <span class="chevron" aria-hidden="true" />
      </button>
      {open && (
        <div class="popover" id={`${id}-pop`} role="group" aria-label={label}>
          {options.length > 8 && (
            <input
              ref={searchRef}
              type="search"
              class="input input-small"
              placeholder={t("filters.search")}
              aria-label={t("filters.search")}
              value={search}
              onInput={(e) => setSearch(e.currentTarget.value)}
            />
          )}
          <div class="popover-list" ref={listRef}>
            {shown.length === 0 && <p class="muted small">{t("filters.noValues")}</p>}
            {shown.map((o) => (
              <label key={o.value} class="check">
                <input type="checkbox" value={o.value} checked={selected.includes(o.value)} onChange={() => toggle(o.value)} />
                <span>{o.label}</span>
              </label>
            ))}
          </div>
          {selected.length > 0 && (
            <button type="button" class="btn btn-link btn-small" onClick={() => onChange([])}>
              {t("filters.clear")}
            </button>
          )}
        </div>
      )}
    </div>
  );
}
