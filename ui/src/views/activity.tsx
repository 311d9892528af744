// "Mon activité": the employee's own events, answers and AI software (the
// software view is passed in by the app shell: no view imports another).
import type { ComponentChildren } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";

import { ActionBadge } from "../components/ActionBadge";
import { DataTable, type DataColumn } from "../components/DataTable";
import { ErrorBox } from "../components/ErrorBox";
import { ServiceAvatar } from "../components/ServiceAvatar";
import { useI18n } from "../i18n";
import { catalog, myAnswers, myEvents, onActivity, uiReady } from "../ipc/commands";
import type { Answer } from "../ipc/gen/Answer";
import type { Event } from "../ipc/gen/Event";
import { subscription } from "../ipc/subscribe";
import { answerKind, answerStatus } from "../lib/answers";
import { eventMeaning, eventName } from "../lib/clipboard";
import { formatDateTime, formatNumber } from "../lib/format";
import { useCommand } from "../lib/useCommand";

export const ACTIVITY_PAGE = 25;
/**
 * How long after the last notice of new activity the view fetches again: the
 * agent sends one at most every second, and commits its events in batches
 * (a quarter of a second), so the fetch waits for the batch to be written.
 */
export const ACTIVITY_DEBOUNCE_MS = 750;

export function ActivityView({ software }: { software?: (refresh: number) => ComponentChildren } = {}) {
  const i18n = useI18n();
  const { t, locale } = i18n;
  const [page, setPage] = useState(0);
  const events = useCommand(() => myEvents(page * ACTIVITY_PAGE, ACTIVITY_PAGE), [page]);
  const answers = useCommand(() => myAnswers(), []);
  const services = useCommand(() => catalog().catch(() => null), []);
  const names = useMemo(
    () => new Map((services.data?.services ?? []).map((s) => [s.id, s.name] as const)),
    [services.data],
  );
  // Bumped on each notice of new activity: the software list reloads too.
  const [softwareRefresh, setSoftwareRefresh] = useState(0);
  useActivityRefresh(() => {
    events.reload();
    answers.reload();
    setSoftwareRefresh((n) => n + 1);
  });

  // The first rows on screen mark the console as interactive (cold-start figure).
  useEffect(() => {
    if (events.data) requestAnimationFrame(() => void uiReady().catch(() => undefined));
  }, [events.data !== undefined]);

  const total = events.data?.total ?? 0;
  const pages = Math.max(1, Math.ceil(total / ACTIVITY_PAGE));
  const rows = events.data?.events ?? [];
  const eventColumns: DataColumn<Event>[] = [
    { header: t("activity.col.time"), class: "nowrap num", cell: (e) => formatDateTime(e.ts, locale) },
    {
      header: t("activity.col.service"),
      cell: (e) => (
        <span class="service-cell">
          <ServiceAvatar id={e.service_id} name={e.service_name} size="sm" />
          {e.service_name}
        </span>
      ),
    },
    // Clipboard findings are worded; domains and hosts read better in monospace.
    {
      header: t("activity.col.name"),
      class: (e) => (e.source === "clipboard" ? undefined : "mono"),
      cell: (e) => eventName(e, i18n),
    },
    { header: t("activity.col.program"), cell: (e) => e.program ?? t("app.none") },
    { header: t("activity.col.action"), cell: (e) => <ActionBadge action={e.action} /> },
    { header: t("activity.col.meaning"), cell: (e) => eventMeaning(e, i18n) },
  ];
  const answerColumns: DataColumn<Answer>[] = [
    { header: t("activity.col.time"), class: "nowrap num", cell: (a) => formatDateTime(a.ts, locale) },
    { header: t("activity.col.service"), cell: (a) => names.get(a.service_id) ?? a.service_id },
    { header: t("activity.col.kind"), cell: (a) => answerKind(a.kind, i18n) },
    { header: t("activity.col.text"), class: "text-cell", cell: (a) => a.text ?? t("app.none") },
    { header: t("activity.col.status"), cell: (a) => answerStatus(a, i18n, Date.now()) },
  ];
  return (
    <div class="view">
      <div class="view-head">
        <h1>{t("activity.title")}</h1>
        <p class="muted">{t("activity.intro")}</p>
      </div>

      <section class="panel" aria-labelledby="act-events">
        <h2 id="act-events">{t("activity.events")}</h2>
        {events.error !== undefined && <ErrorBox error={events.error} onRetry={events.reload} />}
        {events.data && (
          <DataTable
            columns={eventColumns}
            rows={rows}
            rowKey={(e) => e.id}
            rowTestId={() => "activity-row"}
            empty={t("activity.empty")}
          />
        )}
        {total > ACTIVITY_PAGE && (
          <div class="paging">
            <button type="button" class="btn btn-small" disabled={page === 0} onClick={() => setPage(page - 1)}>
              {t("activity.prev")}
            </button>
            <span class="muted small" aria-live="polite">
              {t("activity.page", { page: formatNumber(page + 1, locale), pages: formatNumber(pages, locale) })}
            </span>
            <button type="button" class="btn btn-small" disabled={page + 1 >= pages} onClick={() => setPage(page + 1)}>
              {t("activity.next")}
            </button>
          </div>
        )}
      </section>

      {software !== undefined && (
        <section class="panel" aria-labelledby="act-software" data-testid="my-software">
          <h2 id="act-software">{t("activity.mySoftware")}</h2>
          <p class="muted small">{t("activity.mySoftwareIntro")}</p>
          {software(softwareRefresh)}
        </section>
      )}

      <section class="panel" aria-labelledby="act-answers">
        <h2 id="act-answers">{t("activity.answers")}</h2>
        {answers.error !== undefined && <ErrorBox error={answers.error} onRetry={answers.reload} />}
        {answers.data && (
          <DataTable
            columns={answerColumns}
            rows={answers.data}
            rowKey={(a) => `${a.event_id}-${a.ts}`}
            rowTestId={() => "answers-row"}
            empty={t("activity.answersEmpty")}
          />
        )}
      </section>
    </div>
  );
}

/**
 * Calls `refresh` when the agent says this user has new events (or the
 * console, new answers): once the notices settle, or — while the window is
 * hidden in the tray — when it is next shown.
 */
function useActivityRefresh(refresh: () => void) {
  const latest = useRef(refresh);
  latest.current = refresh;
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stale = false;
    const run = () => {
      timer = undefined;
      if (document.visibilityState === "hidden") stale = true;
      else latest.current();
    };
    const unsubscribe = subscription(
      onActivity(() => {
        if (timer !== undefined) clearTimeout(timer);
        timer = setTimeout(run, ACTIVITY_DEBOUNCE_MS);
      }),
    );
    const onVisibility = () => {
      if (stale && document.visibilityState === "visible") {
        stale = false;
        latest.current();
      }
    };
    document.addEventListener("visibilitychange", onVisibility);
    return () => {
      unsubscribe();
      if (timer !== undefined) clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, []);
}
