// "Sécurité": the security team's views, sharing one filter state between
// the events table and the charts. The agent decides who may read them.
// The tabs' views are passed in by the app shell, so that no view imports another.
import type { ComponentChildren } from "preact";
import { useMemo, useState } from "preact/hooks";

import { ForbiddenPanel } from "../components/ErrorBox";
import { FilterBar } from "../components/FilterBar";
import { Tabs } from "../components/Tabs";
import { useI18n } from "../i18n";
import { facets } from "../ipc/commands";
import type { EventQuery } from "../ipc/gen/EventQuery";
import { isForbidden } from "../lib/errors";
import { buildQuery, DEFAULT_FILTERS, type Filters } from "../lib/query";
import type { SecurityView as Sub } from "../lib/route";
import { useCommand } from "../lib/useCommand";

/** What each tab shows, given the filtered selection (events and charts use it). */
export type SecurityPanels = Record<Sub, (query: EventQuery) => ComponentChildren>;

export function SecurityView({ sub, onSub, panels }: { sub: Sub; onSub: (s: Sub) => void; panels: SecurityPanels }) {
  const { t } = useI18n();
  // The filters, and the time they were set at (relative presets resolve
  // against it, so that scrolling does not shift the selection).
  const [state, setState] = useState<{ filters: Filters; at: number }>(() => ({ filters: DEFAULT_FILTERS, at: Date.now() }));
  const setFilters = (filters: Filters) => setState({ filters, at: Date.now() });
  const query = useMemo(() => buildQuery(state.filters, state.at, 0, 0), [state]);
  const needsFacets = sub === "events" || sub === "charts";
  const fac = useCommand(() => (needsFacets ? facets() : Promise.resolve(undefined)), [needsFacets]);

  const items = [
    { id: "events" as Sub, label: t("tabs.events"), testid: "tab-events" },
    { id: "charts" as Sub, label: t("tabs.charts"), testid: "tab-charts" },
    { id: "software" as Sub, label: t("tabs.software"), testid: "tab-software" },
    { id: "fleet" as Sub, label: t("tabs.fleet"), testid: "tab-fleet" },
    { id: "catalog" as Sub, label: t("tabs.catalog"), testid: "tab-catalog" },
    { id: "policy" as Sub, label: t("tabs.policy"), testid: "tab-policy" },
  ];
  return (
    <div class="security">
      <Tabs items={items} selected={sub} onSelect={onSub} label={t("tabs.securityNav")} idPrefix="sec" variant="secondary" />
      <div class="security-panel" role="tabpanel" id={`sec-panel-${sub}`} aria-labelledby={`sec-tab-${sub}`}>
        {needsFacets && isForbidden(fac.error) ? (
          <ForbiddenPanel />
        ) : (
          <>
            {needsFacets && <FilterBar filters={state.filters} onChange={setFilters} facets={fac.data ?? undefined} />}
            {panels[sub](query)}
          </>
        )}
      </div>
    </div>
  );
}
