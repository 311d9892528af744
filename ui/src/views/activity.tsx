// "Mon activité": the employee's own events and answers.
import { useEffect, useMemo, useState } from "preact/hooks";

import { ActionBadge } from "../components/ActionBadge";
import { ErrorBox } from "../components/ErrorBox";
import { ServiceAvatar } from "../components/ServiceAvatar";
import { useI18n } from "../i18n";
import { catalog, myAnswers, myEvents, uiReady } from "../ipc/commands";
import { answerKind, answerStatus } from "../lib/answers";
import { eventMeaning, eventName } from "../lib/clipboard";
import { formatDateTime, formatNumber } from "../lib/format";
import { useCommand } from "../lib/useCommand";

export const ACTIVITY_PAGE = 25;

export function ActivityView() {
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

  // The first rows on screen mark the console as interactive (cold-start figure).
  useEffect(() => {
    if (events.data) requestAnimationFrame(() => void uiReady().catch(() => undefined));
  }, [events.data !== undefined]);

  const total = events.data?.total ?? 0;
  const pages = Math.max(1, Math.ceil(total / ACTIVITY_PAGE));
  const rows = events.data?.events ?? [];
  return (
    <div class="view">
      <div class="view-head">
        <h1>{t("activity.title")}</h1>
        <p class="muted">{t("activity.intro")}</p>
      </div>

      <section class="panel" aria-labelledby="act-events">
        <h2 id="act-events">{t("activity.events")}</h2>
        {events.error !== undefined && <ErrorBox error={events.error} onRetry={events.reload} />}
        {events.data && rows.length === 0 && <p class="muted">{t("activity.empty")}</p>}
        {rows.length > 0 && (
          <div class="table-wrap">
            <table class="table">
              <thead>
                <tr>
                  <th scope="col">{t("activity.col.time")}</th>
                  <th scope="col">{t("activity.col.service")}</th>
                  <th scope="col">{t("activity.col.name")}</th>
                  <th scope="col">{t("activity.col.program")}</th>
                  <th scope="col">{t("activity.col.action")}</th>
                  <th scope="col">{t("activity.col.meaning")}</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((e) => (
                  <tr key={e.id} data-testid="activity-row">
                    <td class="nowrap num">{formatDateTime(e.ts, locale)}</td>
                    <td>
                      <span class="service-cell">
                        <ServiceAvatar id={e.service_id} name={e.service_name} size="sm" />
                        {e.service_name}
                      </span>
                    </td>
                    <td class={e.source === "clipboard" ? undefined : "mono"}>{eventName(e, i18n)}</td>
                    <td>{e.program ?? t("app.none")}</td>
                    <td>
                      <ActionBadge action={e.action} />
                    </td>
                    <td>{eventMeaning(e, i18n)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
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

      <section class="panel" aria-labelledby="act-answers">
        <h2 id="act-answers">{t("activity.answers")}</h2>
        {answers.error !== undefined && <ErrorBox error={answers.error} onRetry={answers.reload} />}
        {answers.data && answers.data.length === 0 && <p class="muted">{t("activity.answersEmpty")}</p>}
        {answers.data && answers.data.length > 0 && (
          <div class="table-wrap">
            <table class="table">
              <thead>
                <tr>
                  <th scope="col">{t("activity.col.time")}</th>
                  <th scope="col">{t("activity.col.service")}</th>
                  <th scope="col">{t("activity.col.kind")}</th>
                  <th scope="col">{t("activity.col.text")}</th>
                  <th scope="col">{t("activity.col.status")}</th>
                </tr>
              </thead>
              <tbody>
                {answers.data.map((a) => (
                  <tr key={`${a.event_id}-${a.ts}`} data-testid="answers-row">
                    <td class="nowrap num">{formatDateTime(a.ts, locale)}</td>
                    <td>{names.get(a.service_id) ?? a.service_id}</td>
                    <td>{answerKind(a.kind, i18n)}</td>
                    <td class="text-cell">{a.text ?? t("app.none")}</td>
                    <td>{answerStatus(a, i18n, Date.now())}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}
