// "Événements": every matching event in a virtualised table, fetched by page.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";

import { ActionBadge } from "../components/ActionBadge";
import { ErrorBox, ForbiddenPanel } from "../components/ErrorBox";
import { VirtualTable, type Column } from "../components/VirtualTable";
import { useI18n, type MessageKey } from "../i18n";
import { exportEvents, searchEvents } from "../ipc/commands";
import type { Event } from "../ipc/gen/Event";
import type { EventQuery } from "../ipc/gen/EventQuery";
import type { ExportFormat } from "../ipc/gen/ExportFormat";
import type { ExportResult } from "../ipc/gen/ExportResult";
import { errorText, isForbidden } from "../lib/errors";
import { eventName } from "../lib/clipboard";
import { formatDateTime, formatMs, formatNumber } from "../lib/format";
import { PagedLoader } from "../lib/pageCache";
import { PAGE_SIZE, selectionKey } from "../lib/query";
import { pagesFor } from "../lib/virtual";

export const ROW_HEIGHT = 32;
/** Pages kept in memory: 50 × 200 rows. */
export const CACHE_PAGES = 50;

export function EventsView({ query }: { query: EventQuery }) {
  const i18n = useI18n();
  const { t, tp, locale } = i18n;
  const key = useMemo(() => selectionKey(query), [query]);
  const [, setVersion] = useState(0);
  const [timing, setTiming] = useState<{ key: string; ms: number } | null>(null);
  const [selected, setSelected] = useState<{ event: Event; index: number } | null>(null);
  const keyRef = useRef(key);
  keyRef.current = key;
  const range = useRef<[number, number]>([0, 0]);

  const loader = useMemo(
    () => new PagedLoader<Event>(() => Promise.resolve({ total: 0, rows: [] }), PAGE_SIZE, CACHE_PAGES, () => setVersion((v) => v + 1)),
    [],
  );

  const fetcherFor = (q: EventQuery, k: string) => async (page: number, size: number) => {
    const t0 = performance.now();
    const res = await searchEvents({ ...q, offset: page * size, limit: size });
    const ms = performance.now() - t0;
    if (page === 0 && keyRef.current === k) setTiming({ key: k, ms });
    return { total: res.total, rows: res.events };
  };

  const loadRange = () => {
    const [start, end] = range.current;
    const pages = pagesFor(start, Math.max(end, start + 1), PAGE_SIZE);
    for (const p of pages) void loader.load(p);
  };

  // A new selection: forget the cached pages, ignore answers still on their way.
  useEffect(() => {
    loader.reset(fetcherFor(query, key));
    setSelected(null);
    range.current = [0, 0];
    void loader.load(0);
    setVersion((v) => v + 1);
  }, [key]);

  const total = loader.total;
  const error = loader.error;
  if (error !== undefined && isForbidden(error)) return <ForbiddenPanel />;

  const columns: Column[] = [
    { key: "time", label: t("events.col.time"), width: "minmax(10.5rem, 1.1fr)" },
    { key: "user", label: t("events.col.user"), width: "minmax(6rem, 0.8fr)" },
    { key: "program", label: t("events.col.program"), width: "minmax(6rem, 0.8fr)" },
    { key: "service", label: t("events.col.service"), width: "minmax(7rem, 1fr)" },
    { key: "name", label: t("events.col.name"), width: "minmax(9rem, 1.4fr)" },
    { key: "action", label: t("events.col.action"), width: "9.5rem" },
    { key: "rule", label: t("events.col.rule"), width: "minmax(8rem, 1.2fr)" },
    { key: "source", label: t("events.col.source"), width: "4.5rem" },
    { key: "repeats", label: t("events.col.repeats"), width: "4.5rem", align: "end" },
  ];

  return (
    <div class={selected ? "events with-detail" : "events"}>
      <div class="events-main">
        <div class="toolbar">
          <span class="total" data-testid="events-total" aria-live="polite">
            {total === undefined ? t("app.loading") : tp("events.total", total)}
          </span>
          <span class="muted small" data-testid="events-query-ms">
            {timing && timing.key === key ? t("events.queryMs", { ms: formatMs(timing.ms, locale) }) : ""}
          </span>
          <span class="spacer" />
          <ExportButtons query={query} />
        </div>
        {error !== undefined && (
          <ErrorBox
            error={error}
            onRetry={() => {
              loader.reset();
              void loader.load(0);
              loadRange();
            }}
          />
        )}
        {total === 0 && <p class="muted empty">{t("events.empty")}</p>}
        <VirtualTable<Event>
          testid="events-table"
          rowTestid="events-row"
          label={t("events.tableLabel")}
          loadingText={t("events.loadingRow")}
          columns={columns}
          total={total ?? 0}
          rowHeight={ROW_HEIGHT}
          resetKey={key}
          selectedIndex={selected?.index}
          getRow={(i) => loader.row(i)}
          onRange={(start, end) => {
            range.current = [start, end];
            loadRange();
          }}
          onActivate={(event, index) => setSelected({ event, index })}
          renderCells={(e) => [
            <span class="num">{formatDateTime(e.ts, locale)}</span>,
            e.user ?? (e.uid !== null ? String(e.uid) : t("app.none")),
            e.program ?? t("app.none"),
            e.service_name,
            // The inventory's events say what the software is; the others, the name as seen.
            e.source === "inventory" ? (
              <span title={e.name}>{eventName(e, i18n)}</span>
            ) : (
              <span class="mono" title={e.name}>{e.name}</span>
            ),
            <ActionBadge action={e.action} />,
            <span class="mono" title={e.rule_id}>{e.rule_id}</span>,
            e.source,
            e.repeats > 1 ? <span class="repeats">×{formatNumber(e.repeats, locale)}</span> : "",
          ]}
        />
      </div>
      {selected && <EventDetail event={selected.event} onClose={() => setSelected(null)} />}
    </div>
  );
}

function ExportButtons({ query }: { query: EventQuery }) {
  const i18n = useI18n();
  const { t, locale } = i18n;
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ ok: ExportResult } | { err: unknown } | null>(null);
  const run = (format: ExportFormat) => {
    setBusy(true);
    setResult(null);
    exportEvents({ ...query, offset: 0, limit: 0 }, format).then(
      (ok) => {
        setBusy(false);
        setResult({ ok });
      },
      (err: unknown) => {
        setBusy(false);
        setResult({ err });
      },
    );
  };
  return (
    <div class="export">
      <button type="button" class="btn btn-small" data-testid="export-csv" disabled={busy} onClick={() => run("csv")}>
        {t("events.exportCsv")}
      </button>
      <button type="button" class="btn btn-small" data-testid="export-json" disabled={busy} onClick={() => run("json")}>
        {t("events.exportJson")}
      </button>
      <span class="export-result small" data-testid="export-result" role="status">
        {busy
          ? t("events.exporting")
          : result && "ok" in result
            ? t("events.exported", { count: formatNumber(result.ok.count, locale), path: result.ok.path })
            : result && "err" in result
              ? <span class="error-text">{errorText(result.err, i18n)}</span>
              : ""}
      </span>
    </div>
  );
}

const FIELDS: (keyof Event)[] = [
  "ts",
  "action",
  "service_name",
  "service_id",
  "vendor",
  "category",
  "name",
  "rule_id",
  "policy_version",
  "source",
  "protocol",
  "src",
  "dst",
  "ech",
  "repeats",
  "user",
  "uid",
  "program",
  "program_path",
  "pid",
  "id",
];

function EventDetail({ event, onClose }: { event: Event; onClose: () => void }) {
  const { t, locale } = useI18n();
  const close = useRef<HTMLButtonElement>(null);
  const opener = useRef<Element | null>(null);
  useEffect(() => {
    opener.current = document.activeElement;
    close.current?.focus();
    return () => {
      if (opener.current instanceof HTMLElement) opener.current.focus();
    };
  }, []);
  useEffect(() => {
    close.current?.focus();
  }, [event.id]);
  const value = (k: keyof Event) => {
    const v = event[k];
    if (k === "ts") return formatDateTime(event.ts, locale);
    if (k === "action") return <ActionBadge action={event.action} />;
    if (typeof v === "boolean") return v ? t("app.yes") : t("app.no");
    if (v === null || v === "") return t("app.none");
    return String(v);
  };
  return (
    <aside
      class="detail panel"
      aria-labelledby="event-detail-title"
      onKeyDown={(e) => {
        if (e.key === "Escape") {
          e.preventDefault();
          onClose();
        }
      }}
    >
      <div class="detail-head">
        <h2 id="event-detail-title">{t("events.detail")}</h2>
        <button ref={close} type="button" class="btn btn-ghost btn-small" onClick={onClose} aria-label={t("app.close")}>
          {t("app.close")}
        </button>
      </div>
      <dl class="facts">
        {FIELDS.map((k) => (
          <div key={k} class="fact">
            <dt>{t(`field.${k}` as MessageKey)}</dt>
            <dd class={k === "id" || k === "program_path" || k === "name" ? "mono break" : "break"}>{value(k)}</dd>
          </div>
        ))}
      </dl>
    </aside>
  );
}
