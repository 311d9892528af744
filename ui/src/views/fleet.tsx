// "Parc": the whole fleet as the collector sees it, for the security team —
// the workstations and when each last called in, the SIEM exports and what
// waits for them (their lag), the fleet's AI software and the recertification
// of the rights it holds (R35: each broad right kept or to remove, decided
// here, recorded under the administrator's name by the collector), the
// employees' exception requests, and the periodic review.
// The console asks with the administrator's own certificate; the collector
// decides and logs every request.
import { useMemo, useState } from "preact/hooks";

import { DataTable, type DataColumn } from "../components/DataTable";
import { ErrorBox } from "../components/ErrorBox";
import { useI18n, type I18n } from "../i18n";
import { catalog, fleetDecideException, fleetExceptions, fleetInventory, fleetOverview, fleetRecertify, fleetReport, fleetStatus } from "../ipc/commands";
import type { FleetAgent } from "../ipc/gen/FleetAgent";
import type { FleetException } from "../ipc/gen/FleetException";
import type { FleetExport } from "../ipc/gen/FleetExport";
import type { FleetFind } from "../ipc/gen/FleetFind";
import type { FleetStatus } from "../ipc/gen/FleetStatus";
import { errorText } from "../lib/errors";
import { formatDateTime, formatNumber } from "../lib/format";
import { kindLabel, rightLabel } from "../lib/software";
import { useCommand } from "../lib/useCommand";

/** A workstation silent for longer than this is flagged (the collector's alert default). */
const SILENT_MINUTES = 30;

/** Microseconds since the epoch of an ISO time from the collector, or null. */
function micros(iso: string | null): number | null {
  if (!iso) return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms * 1000;
}

/** How long ago, in words that fit a cell ("12 min", "3 h", "2 j"). */
export function age(iso: string | null, now: number, { t, locale }: Pick<I18n, "t" | "locale">): string | null {
  const at = micros(iso);
  if (at === null) return null;
  const minutes = Math.max(0, Math.round((now * 1000 - at) / 60_000_000));
  if (minutes < 1) return t("fleet.ago.now");
  if (minutes < 120) return t("fleet.ago.minutes", { n: formatNumber(minutes, locale) });
  const hours = Math.round(minutes / 60);
  if (hours < 48) return t("fleet.ago.hours", { n: formatNumber(hours, locale) });
  return t("fleet.ago.days", { n: formatNumber(Math.round(hours / 24), locale) });
}

export function FleetView() {
  const { t } = useI18n();
  const status = useCommand(() => fleetStatus(), []);
  if (status.error !== undefined) return <ErrorBox error={status.error} onRetry={status.reload} />;
  if (!status.data) return <p class="muted">{t("app.loading")}</p>;
  if (!status.data.ready) return <FleetSetup status={status.data} />;
  return (
    <div class="fleet" data-testid="fleet-view">
      <Overview />
      <Recertification />
      <Exceptions />
      <Review />
    </div>
  );
}

/** What is missing before the view can ask the collector, and how to get it. */
function FleetSetup({ status }: { status: FleetStatus }) {
  const { t } = useI18n();
  const line = (label: string, value: string | null, present: boolean) => (
    <div class="fact">
      <dt>{label}</dt>
      <dd>
        <span class="mono">{value ?? t("app.none")}</span>{" "}
        <span class={present ? "muted" : "rights-broad"}>{present ? t("fleet.setup.present") : t("fleet.setup.missing")}</span>
      </dd>
    </div>
  );
  return (
    <section class="panel" data-testid="fleet-setup">
      <h2>{t("fleet.setup.title")}</h2>
      <p>{t("fleet.setup.body")}</p>
      <dl class="facts">
        {line(t("fleet.setup.collector"), status.collector, status.collector !== null)}
        {line(t("fleet.setup.ca"), status.ca, status.ready || status.collector === null)}
        {line(t("fleet.setup.identity"), status.identity, status.ready)}
      </dl>
      <p class="muted small">{t("fleet.setup.command")}</p>
    </section>
  );
}

function Overview() {
  const i18n = useI18n();
  const { t, locale } = i18n;
  const overview = useCommand(() => fleetOverview(), []);
  const now = Date.now();
  if (overview.error !== undefined && !overview.data) return <ErrorBox error={overview.error} onRetry={overview.reload} testid="fleet-error" />;
  if (!overview.data) return <p class="muted">{t("app.loading")}</p>;
  const silent = (a: FleetAgent) => {
    const seen = micros(a.last_seen);
    return a.revoked_at === null && (seen === null || now * 1000 - seen > SILENT_MINUTES * 60_000_000);
  };
  const agents: DataColumn<FleetAgent>[] = [
    { header: t("fleet.col.host"), class: "mono", cell: (a) => a.hostname },
    { header: t("fleet.col.group"), cell: (a) => a.group },
    { header: t("fleet.col.version"), class: "mono", cell: (a) => a.version ?? t("app.none") },
    { header: t("fleet.col.mode"), cell: (a) => (a.mode ? t(a.mode === "enforce" ? "fleet.mode.enforce" : "fleet.mode.monitor") : t("app.none")) },
    { header: t("fleet.col.bundle"), align: "end", cell: (a) => (a.bundle_version === null ? t("app.none") : formatNumber(a.bundle_version, locale)) },
    {
      header: t("fleet.col.lastSeen"),
      class: (a) => (silent(a) ? "nowrap rights-broad" : "nowrap"),
      title: (a) => (a.last_seen ? formatDateTime(micros(a.last_seen) ?? 0, locale) : undefined),
      cell: (a) =>
        a.revoked_at !== null
          ? t("fleet.revoked")
          : `${age(a.last_seen, now, i18n) ?? t("fleet.never")}${silent(a) ? ` · ${t("fleet.silent")}` : ""}`,
    },
  ];
  const exportsColumns: DataColumn<FleetExport>[] = [
    { header: t("fleet.col.destination"), class: "mono", cell: (e) => e.destination },
    { header: t("fleet.col.exported"), align: "end", cell: (e) => formatNumber(e.exported, locale) },
    { header: t("fleet.col.waiting"), align: "end", cell: (e) => formatNumber(e.waiting, locale) },
    {
      header: t("fleet.col.lag"),
      class: (e) => (e.waiting > 0 ? "nowrap rights-broad" : "nowrap"),
      cell: (e) => (e.waiting === 0 ? t("fleet.upToDate") : (age(e.oldest_waiting, now, i18n) ?? t("app.none"))),
    },
    { header: t("fleet.col.lastError"), cell: (e) => e.last_error ?? t("app.none") },
  ];
  const silentCount = overview.data.agents.filter(silent).length;
  return (
    <>
      <section class="panel" aria-labelledby="fleet-agents-title">
        <div class="panel-head">
          <h2 id="fleet-agents-title">{t("fleet.workstations", { n: formatNumber(overview.data.agents.length, locale) })}</h2>
          <span class="muted small" data-testid="fleet-silent">
            {t("fleet.silentCount", { n: formatNumber(silentCount, locale), minutes: SILENT_MINUTES })}
          </span>
          <button type="button" class="btn btn-small" data-testid="fleet-refresh" onClick={overview.reload}>
            {t("fleet.refresh")}
          </button>
        </div>
        <DataTable columns={agents} rows={overview.data.agents} rowKey={(a) => a.id} rowTestId={() => "fleet-agent"} empty={t("fleet.noAgents")} />
      </section>
      <section class="panel" aria-labelledby="fleet-exports-title">
        <h2 id="fleet-exports-title">{t("fleet.exports")}</h2>
        <DataTable
          columns={exportsColumns}
          rows={overview.data.exports}
          rowKey={(e) => e.destination}
          rowTestId={() => "fleet-export"}
          empty={t("fleet.noExports")}
        />
      </section>
    </>
  );
}

function Recertification() {
  const i18n = useI18n();
  const { t, locale } = i18n;
  const [filter, setFilter] = useState<"pending" | "broad" | "all">("pending");
  const finds = useCommand(() => fleetInventory(filter), [filter]);
  const [notes, setNotes] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState<string | null>(null);
  const [failure, setFailure] = useState<unknown>(undefined);
  const rows = useMemo(() => finds.data ?? [], [finds.data]);

  const decide = async (find: FleetFind, right: string, decision: "keep" | "remove") => {
    const key = `${find.find}|${right}`;
    setBusy(key);
    setFailure(undefined);
    try {
      await fleetRecertify(find.find, right, decision, notes[find.find] ?? "");
      finds.reload();
    } catch (e) {
      setFailure(e);
    } finally {
      setBusy(null);
    }
  };

  const columns: DataColumn<FleetFind>[] = [
    { header: t("fleet.col.host"), class: "mono", cell: (f) => f.hostname },
    { header: t("fleet.col.user"), class: "mono", cell: (f) => f.user ?? t("app.none") },
    {
      header: t("fleet.col.software"),
      cell: (f) => (
        <span>
          {f.name}
          <span class="muted small"> · {kindLabel(f.kind, i18n)}</span>
        </span>
      ),
    },
    {
      header: t("fleet.col.rights"),
      cell: (f) =>
        f.broad.length === 0 ? (
          <span class="muted small">{t("fleet.noBroadRight")}</span>
        ) : (
        <ul class="plain" data-testid="fleet-rights">
          {f.broad.map((right) => {
            const decided = f.decisions.find((d) => d.right === right);
            const key = `${f.find}|${right}`;
            return (
              <li key={right}>
                <span class={decided ? "" : "rights-broad"}>{rightLabel(right, i18n)}</span>{" "}
                {decided ? (
                  <span class="muted small" data-testid="fleet-decided">
                    {t(decided.decision === "keep" ? "fleet.decided.keep" : "fleet.decided.remove", {
                      by: decided.by,
                      at: formatDateTime(micros(decided.at) ?? 0, locale),
                    })}
                  </span>
                ) : (
                  <span class="actions">
                    <button type="button" class="btn btn-small" disabled={busy === key} data-testid="fleet-keep" onClick={() => void decide(f, right, "keep")}>
                      {t("fleet.keep")}
                    </button>
                    <button type="button" class="btn btn-small" disabled={busy === key} data-testid="fleet-remove" onClick={() => void decide(f, right, "remove")}>
                      {t("fleet.remove")}
                    </button>
                  </span>
                )}
              </li>
            );
          })}
        </ul>
        ),
    },
    {
      header: t("fleet.note"),
      // Once every right is decided, the notes given with the decisions.
      cell: (f) =>
        f.broad.length === 0 ? null : f.pending.length === 0 ? (
          <span class="muted small">{f.decisions.map((d) => d.note).filter(Boolean).join(" · ") || t("app.none")}</span>
        ) : (
        <input
          class="input"
          aria-label={t("fleet.note")}
          data-testid="fleet-note"
          maxLength={1000}
          value={notes[f.find] ?? ""}
          onInput={(e) => setNotes({ ...notes, [f.find]: e.currentTarget.value })}
        />
        ),
    },
  ];

  return (
    <section class="panel" aria-labelledby="fleet-recertify-title">
      <div class="panel-head">
        <h2 id="fleet-recertify-title">{t("fleet.recertify")}</h2>
        <select class="input" aria-label={t("fleet.filter")} data-testid="fleet-filter" value={filter} onChange={(e) => setFilter(e.currentTarget.value as "pending" | "broad" | "all")}>
          <option value="pending">{t("fleet.filter.pending")}</option>
          <option value="broad">{t("fleet.filter.broad")}</option>
          <option value="all">{t("fleet.filter.all")}</option>
        </select>
      </div>
      <p class="muted small">{t("fleet.recertify.intro")}</p>
      {failure !== undefined && <ErrorBox error={failure} testid="fleet-decide-error" />}
      {finds.error !== undefined && !finds.data ? (
        <ErrorBox error={finds.error} onRetry={finds.reload} />
      ) : !finds.data ? (
        <p class="muted">{t("app.loading")}</p>
      ) : (
        <DataTable
          columns={columns}
          rows={rows}
          rowKey={(f) => f.find}
          rowTestId={() => "fleet-find"}
          empty={filter === "pending" ? t("fleet.nothingPending") : filter === "broad" ? t("fleet.nothingBroad") : t("fleet.nothingAtAll")}
        />
      )}
    </section>
  );
}

/** The employees' exception requests, granted or refused here under the administrator's name. */
function Exceptions() {
  const i18n = useI18n();
  const { t, locale } = i18n;
  const [filter, setFilter] = useState<"pending" | "all">("pending");
  const requests = useCommand(() => fleetExceptions(filter), [filter]);
  const services = useCommand(() => catalog().catch(() => null), []);
  const names = useMemo(() => new Map((services.data?.services ?? []).map((s) => [s.id, s.name] as const)), [services.data]);
  const [notes, setNotes] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState<string | null>(null);
  const [failure, setFailure] = useState<unknown>(undefined);

  const decide = async (request: FleetException, decision: "grant" | "refuse") => {
    setBusy(request.request);
    setFailure(undefined);
    try {
      await fleetDecideException(request.request, decision, notes[request.request] ?? "");
      requests.reload();
    } catch (e) {
      setFailure(e);
    } finally {
      setBusy(null);
    }
  };

  const columns: DataColumn<FleetException>[] = [
    { header: t("fleet.col.when"), class: "nowrap", cell: (r) => formatDateTime(micros(r.at) ?? 0, locale) },
    { header: t("fleet.col.host"), class: "mono nowrap", cell: (r) => r.hostname },
    { header: t("fleet.col.user"), class: "mono nowrap", cell: (r) => r.user ?? t("app.none") },
    { header: t("fleet.col.service"), cell: (r) => names.get(r.service_id) ?? r.service_id },
    { header: t("fleet.col.request"), cell: (r) => r.text || t("app.none") },
    {
      header: t("fleet.col.decision"),
      cell: (r) =>
        r.decision ? (
          <span class="muted small" data-testid="fleet-exception-decided">
            {t(r.decision.decision === "grant" ? "fleet.exception.granted" : "fleet.exception.refused", {
              by: r.decision.by,
              at: formatDateTime(micros(r.decision.at) ?? 0, locale),
            })}
            {r.decision.note && ` — ${r.decision.note}`}
          </span>
        ) : (
          <span class="actions">
            <input
              class="input"
              aria-label={t("fleet.note")}
              placeholder={t("fleet.note")}
              data-testid="fleet-exception-note"
              maxLength={1000}
              value={notes[r.request] ?? ""}
              onInput={(e) => setNotes({ ...notes, [r.request]: e.currentTarget.value })}
            />
            <button type="button" class="btn btn-small" disabled={busy === r.request} data-testid="fleet-grant" onClick={() => void decide(r, "grant")}>
              {t("fleet.grant")}
            </button>
            <button type="button" class="btn btn-small" disabled={busy === r.request} data-testid="fleet-refuse" onClick={() => void decide(r, "refuse")}>
              {t("fleet.refuse")}
            </button>
          </span>
        ),
    },
  ];

  return (
    <section class="panel" aria-labelledby="fleet-exceptions-title">
      <div class="panel-head">
        <h2 id="fleet-exceptions-title">{t("fleet.exceptions")}</h2>
        <select class="input" aria-label={t("fleet.exceptions.filter")} data-testid="fleet-exception-filter" value={filter} onChange={(e) => setFilter(e.currentTarget.value as "pending" | "all")}>
          <option value="pending">{t("fleet.exceptions.pending")}</option>
          <option value="all">{t("fleet.exceptions.all")}</option>
        </select>
      </div>
      <p class="muted small">{t("fleet.exceptions.intro")}</p>
      {failure !== undefined && <ErrorBox error={failure} />}
      {requests.error !== undefined && !requests.data ? (
        <ErrorBox error={requests.error} onRetry={requests.reload} />
      ) : !requests.data ? (
        <p class="muted">{t("app.loading")}</p>
      ) : (
        <DataTable
          columns={columns}
          rows={requests.data}
          rowKey={(r) => r.request}
          rowTestId={() => "fleet-exception"}
          empty={filter === "pending" ? t("fleet.exceptions.nonePending") : t("fleet.exceptions.none")}
        />
      )}
    </section>
  );
}

/** YYYY-MM-DD of a local date. */
function day(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function Review() {
  const i18n = useI18n();
  const { t, locale } = i18n;
  const [from, setFrom] = useState(() => day(new Date(Date.now() - 30 * 86_400_000)));
  const [to, setTo] = useState(() => day(new Date()));
  const [lang, setLang] = useState<string>(locale);
  const [state, setState] = useState<{ busy: boolean; path?: string; error?: unknown }>({ busy: false });
  const make = async () => {
    setState({ busy: true });
    try {
      const written = await fleetReport(from, to, lang);
      setState({ busy: false, path: written.path });
    } catch (e) {
      setState({ busy: false, error: e });
    }
  };
  return (
    <section class="panel" aria-labelledby="fleet-review-title">
      <h2 id="fleet-review-title">{t("fleet.report")}</h2>
      <p class="muted small">{t("fleet.report.intro")}</p>
      <div class="toolbar">
        <label>
          {t("fleet.report.from")}{" "}
          <input class="input" type="date" data-testid="fleet-report-from" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
        </label>
        <label>
          {t("fleet.report.to")}{" "}
          <input class="input" type="date" data-testid="fleet-report-to" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
        </label>
        <select class="input" aria-label={t("header.language")} value={lang} onChange={(e) => setLang(e.currentTarget.value)}>
          <option value="fr">{t("fleet.report.fr")}</option>
          <option value="en">{t("fleet.report.en")}</option>
        </select>
        <button type="button" class="btn" disabled={state.busy} data-testid="fleet-report" onClick={() => void make()}>
          {state.busy ? t("app.loading") : t("fleet.report.generate")}
        </button>
      </div>
      {state.path && (
        <p role="status" data-testid="fleet-report-done">
          {t("fleet.report.done", { path: state.path })}
        </p>
      )}
      {state.error !== undefined && (
        <p class="error-box" role="alert">
          {errorText(state.error, i18n)}
        </p>
      )}
    </section>
  );
}
