import { useEffect, useRef, useState } from "preact/hooks";

import { useI18n } from "../i18n";
import type { Facets } from "../ipc/gen/Facets";
import { ACTIONS, DEFAULT_FILTERS, activeFilterCount, type Filters } from "../lib/query";
import { categoryName } from "../lib/rules";
import { PRESETS } from "../lib/time";
import { MultiSelect } from "./MultiSelect";

export const TEXT_DEBOUNCE_MS = 250;

interface Props {
  filters: Filters;
  onChange: (f: Filters) => void;
  facets: Facets | undefined;
}

/** The security views' filters: time range, multi-selects from the facets, free text. */
export function FilterBar({ filters, onChange, facets }: Props) {
  const i18n = useI18n();
  const { t } = i18n;
  const [text, setText] = useState(filters.text);
  const latest = useRef(filters);
  latest.current = filters;

  // The text filter applies 250 ms after the last keystroke.
  useEffect(() => {
    if (text === latest.current.text) return undefined;
    const timer = setTimeout(() => onChange({ ...latest.current, text }), TEXT_DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [text]);
  // An outside reset clears the box.
  useEffect(() => {
    setText(filters.text);
  }, [filters.text]);

  const set = <K extends keyof Filters>(key: K, value: Filters[K]) => onChange({ ...filters, [key]: value });
  const f = facets;
  const count = activeFilterCount(filters) + (filters.range.preset !== DEFAULT_FILTERS.range.preset ? 1 : 0);
  return (
    <div class="filters" role="search" aria-label={t("filters.title")}>
      <div class="filters-row">
        <div class="segmented" role="group" aria-label={t("filters.range")}>
          {PRESETS.map((p) => (
            <button
              key={p}
              type="button"
              class="seg"
              aria-pressed={filters.range.preset === p}
              onClick={() => set("range", { preset: p, from: "", to: "" })}
            >
              {t(`filters.preset.${p}`)}
            </button>
          ))}
        </div>
        <label class="inline-field">
          <span>{t("filters.from")}</span>
          <input
            type="datetime-local"
            class="input input-small"
            value={filters.range.preset === "custom" ? filters.range.from : ""}
            onChange={(e) =>
              set("range", {
                preset: "custom",
                from: e.currentTarget.value,
                to: filters.range.preset === "custom" ? filters.range.to : "",
              })
            }
          />
        </label>
        <label class="inline-field">
          <span>{t("filters.to")}</span>
          <input
            type="datetime-local"
            class="input input-small"
            value={filters.range.preset === "custom" ? filters.range.to : ""}
            onChange={(e) =>
              set("range", {
                preset: "custom",
                from: filters.range.preset === "custom" ? filters.range.from : "",
                to: e.currentTarget.value,
              })
            }
          />
        </label>
        <span class="spacer" />
        <input
          type="search"
          class="input search"
          data-testid="filter-text"
          aria-label={t("filters.text")}
          placeholder={t("filters.textPlaceholder")}
          value={text}
          onInput={(e) => setText(e.currentTarget.value)}
        />
      </div>
      <div class="filters-row">
        <MultiSelect
          label={t("filters.service")}
          testid="filter-service"
          options={f?.services ?? []}
          selected={filters.services}
          onChange={(v) => set("services", v)}
        />
        <MultiSelect
          label={t("filters.category")}
          testid="filter-category"
          options={(f?.categories ?? []).map((c) => ({ value: c.value, label: categoryName(c.value, i18n) }))}
          selected={filters.categories}
          onChange={(v) => set("categories", v)}
        />
        <MultiSelect
          label={t("filters.user")}
          testid="filter-user"
          options={f?.users ?? []}
          selected={filters.users}
          onChange={(v) => set("users", v)}
        />
        <MultiSelect
          label={t("filters.program")}
          testid="filter-program"
          options={f?.programs ?? []}
          selected={filters.programs}
          onChange={(v) => set("programs", v)}
        />
        <MultiSelect
          label={t("filters.action")}
          testid="filter-action"
          options={ACTIONS.map((a) => ({ value: a, label: t(`action.${a}`) }))}
          selected={filters.actions}
          onChange={(v) => set("actions", ACTIONS.filter((a) => v.includes(a)))}
        />
        <MultiSelect
          label={t("filters.rule")}
          testid="filter-rule"
          options={f?.rules ?? []}
          selected={filters.rules}
          onChange={(v) => set("rules", v)}
        />
        {count > 0 && (
          <button type="button" class="btn btn-link btn-small" onClick={() => onChange(DEFAULT_FILTERS)}>
            {t("filters.reset")}
          </button>
        )}
      </div>
    </div>
  );
}
