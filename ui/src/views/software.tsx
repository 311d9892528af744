// "Logiciels IA": the AI software the agent's inventory found — extensions,
// plugins, apps, command-line agents, MCP servers, local model servers —
// with the service each sends data to and the rights it holds (R35). The
// security team sees every user's (`everyone`); an employee, their own.
import { useMemo, useState } from "preact/hooks";

import { DataTable, type DataColumn } from "../components/DataTable";
import { SearchBox } from "../components/SearchBox";
import { ErrorBox, ForbiddenPanel } from "../components/ErrorBox";
import { ServiceAvatar } from "../components/ServiceAvatar";
import { useI18n } from "../i18n";
import { catalog, inventory } from "../ipc/commands";
import type { InventoryRow } from "../ipc/gen/InventoryRow";
import { isForbidden } from "../lib/errors";
import { formatDateTime, formatNumber } from "../lib/format";
import { destination, hostLabel, kindLabel, KINDS, matchesRow, rightLabel } from "../lib/software";
import { useCommand } from "../lib/useCommand";

const rowKey = (r: InventoryRow) => `${r.uid ?? "system"}|${r.kind}|${r.host}|${r.key}`;

/** `refresh`: a new value fetches the list again (new activity was recorded). */
export function SoftwareView({ everyone, refresh = 0 }: { everyone: boolean; refresh?: number }) {
  const i18n = useI18n();
  const { t, tp, locale } = i18n;
  const rows = useCommand(() => inventory(everyone), [everyone, refresh]);
  const services = useCommand(() => catalog().catch(() => null), []);
  const names = useMemo(
    () => new Map((services.data?.services ?? []).map((s) => [s.id, s.name] as const)),
    [services.data],
  );
  const [search, setSearch] = useState("");
  const [kind, setKind] = useState("");
  const [selected, setSelected] = useState<string | null>(null);
  const shown = useMemo(
    () => (rows.data ?? []).filter((r) => (!kind || r.kind === kind) && matchesRow(r, search)),
    [rows.data, kind, search],
  );
  const current = rows.data?.find((r) => rowKey(r) === selected) ?? null;

  if (rows.error !== undefined && !rows.data) {
    return isForbidden(rows.error) ? <ForbiddenPanel /> : <ErrorBox error={rows.error} onRetry={rows.reload} />;
  }
  if (!rows.data) return <p class="muted">{t("app.loading")}</p>;

  const columns: DataColumn<InventoryRow>[] = [
    {
      header: t("software.col.name"),
      cell: (r) => (
        <span class="service-cell">
          <ServiceAvatar id={r.service_id ?? r.key} name={r.name} size="sm" />
          {r.name}
        </span>
      ),
    },
    { header: t("software.col.kind"), cell: (r) => kindLabel(r.kind, i18n) },
    { header: t("software.col.host"), class: "mono", cell: (r) => hostLabel(r.host, i18n) },
    { header: t("software.col.version"), class: "mono", cell: (r) => r.version ?? t("app.none") },
    ...(everyone ? [{ header: t("software.col.user"), cell: (r: InventoryRow) => r.user ?? (r.uid === null ? t("software.system") : String(r.uid)) }] : []),
    { header: t("software.col.service"), cell: (r) => destination(r, names, i18n) },
    {
      header: t("software.col.rights"),
      cell: (r) => {
        // The agent says which rights are broad (`InventoryRow::broad`).
        const broad = r.broad.length;
        return r.rights.length === 0 ? (
          <span class="muted">{t("software.noRights")}</span>
        ) : (
          <span class={broad > 0 ? "rights rights-broad" : "rights"}>
            {tp("software.rights", r.rights.length)}
            {broad > 0 && `, ${tp("software.broadCount", broad)}`}
          </span>
        );
      },
    },
    { header: t("software.col.firstSeen"), class: "nowrap num", cell: (r) => formatDateTime(r.first_seen, locale) },
  ];

  return (
    <div class="catalog software">
      <div class="catalog-list">
        <div class="toolbar">
          {/* An employee's section says what it is above the list. */}
          {everyone && (
            <span class="muted small" data-testid="software-intro">
              {t("software.intro", { n: formatNumber(rows.data.length, locale) })}
            </span>
          )}
          <span class="spacer" />
          <select
            class="input"
            aria-label={t("software.kindFilter")}
            data-testid="software-kind"
            value={kind}
            onChange={(e) => setKind(e.currentTarget.value)}
          >
            <option value="">{t("software.allKinds")}</option>
            {KINDS.map((k) => (
              <option key={k} value={k}>
                {kindLabel(k, i18n)}
              </option>
            ))}
          </select>
          <SearchBox label={t("software.search")} value={search} onChange={setSearch} />
        </div>
        <DataTable
          columns={columns}
          rows={shown}
          rowKey={rowKey}
          rowTestId={() => "software-row"}
          onSelect={(r) => setSelected(rowKey(r))}
          selectedKey={selected}
          scroll
          empty={t("software.empty")}
          headerWhenEmpty
        />
      </div>
      <aside class="detail panel" aria-labelledby="sw-detail-title" aria-live="polite">
        {current ? <SoftwareDetail row={current} names={names} /> : <p class="muted">{t("software.select")}</p>}
      </aside>
    </div>
  );
}

function SoftwareDetail({ row: r, names }: { row: InventoryRow; names: Map<string, string> }) {
  const i18n = useI18n();
  const { t, locale } = i18n;
  return (
    <div data-testid="software-detail">
      <div class="prompt-service">
        <ServiceAvatar id={r.service_id ?? r.key} name={r.name} />
        <div>
          <h2 id="sw-detail-title" class="service-name">
            {r.name}
          </h2>
          <div class="muted small">
            {kindLabel(r.kind, i18n)} · <span class="mono">{hostLabel(r.host, i18n)}</span>
          </div>
        </div>
      </div>
      <dl class="facts">
        <div class="fact">
          <dt>{t("software.col.service")}</dt>
          <dd>{destination(r, names, i18n)}</dd>
        </div>
        {r.local && (
          <div class="fact">
            <dt>{t("software.local")}</dt>
            <dd>{t("app.yes")}</dd>
          </div>
        )}
        <div class="fact">
          <dt>{t("software.col.rights")}</dt>
          <dd>
            {r.rights.length === 0 ? (
              t("software.noRights")
            ) : (
              <ul class="plain" data-testid="software-rights">
                {r.rights.map((right) => (
                  <li key={right} class={r.broad.includes(right) ? "right-broad" : undefined} title={right}>
                    {rightLabel(right, i18n)}
                    {r.broad.includes(right) && <span class="badge badge-warn">{t("software.broad")}</span>}
                  </li>
                ))}
              </ul>
            )}
          </dd>
        </div>
        <div class="fact">
          <dt>{t("software.col.version")}</dt>
          <dd class="mono">{r.version ?? t("app.none")}</dd>
        </div>
        <div class="fact">
          <dt>{t("software.id")}</dt>
          <dd class="mono break">{r.key}</dd>
        </div>
        <div class="fact">
          <dt>{t("software.path")}</dt>
          <dd class="mono break">{r.path || t("app.none")}</dd>
        </div>
        <div class="fact">
          <dt>{t("software.col.user")}</dt>
          <dd>{r.user ?? (r.uid === null ? t("app.none") : String(r.uid))}</dd>
        </div>
        <div class="fact">
          <dt>{t("software.col.firstSeen")}</dt>
          <dd>{formatDateTime(r.first_seen, locale)}</dd>
        </div>
        <div class="fact">
          <dt>{t("software.lastSeen")}</dt>
          <dd>{formatDateTime(r.last_seen, locale)}</dd>
        </div>
      </dl>
    </div>
  );
}
