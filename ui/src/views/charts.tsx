// "Graphiques": the same selection as the events table, aggregated.
import { useMemo } from "preact/hooks";

import { ActionBadge } from "../components/ActionBadge";
import { ErrorBox } from "../components/ErrorBox";
import { RankedBars } from "../components/RankedBars";
import { STACK, TimelineChart } from "../components/TimelineChart";
import { useI18n } from "../i18n";
import { eventStats } from "../ipc/commands";
import type { EventQuery } from "../ipc/gen/EventQuery";
import { answerKind } from "../lib/answers";
import { formatDateTime, formatNumber, formatShortDateTime } from "../lib/format";
import { selectionKey } from "../lib/query";
import { useCommand } from "../lib/useCommand";

export function ChartsView({ query }: { query: EventQuery }) {
  const i18n = useI18n();
  const { t, tp, locale } = i18n;
  const key = useMemo(() => selectionKey(query), [query]);
  const stats = useCommand(() => eventStats({ ...query, offset: 0, limit: 0 }), [key]);

  if (stats.error !== undefined && !stats.data) return <ErrorBox error={stats.error} onRetry={stats.reload} />;
  const s = stats.data;
  if (!s) return <p class="muted">{t("app.loading")}</p>;
  return (
    <div class="charts">
      {stats.error !== undefined && <ErrorBox error={stats.error} onRetry={stats.reload} />}
      <section class="panel chart-panel">
        <div class="panel-head">
          <h2>{t("charts.timeline")}</h2>
          <span class="muted small">{tp("charts.total", s.total)}</span>
        </div>
        {s.timeline.length === 0 ? (
          <p class="muted">{t("charts.noData")}</p>
        ) : (
          <>
            <TimelineChart buckets={s.timeline} bucketMicros={s.bucket_micros} />
            <details class="chart-data">
              <summary>{t("charts.timelineData")}</summary>
              <div class="table-wrap">
                <table class="table compact">
                  <thead>
                    <tr>
                      <th scope="col">{t("charts.bucket")}</th>
                      {STACK.map((a) => (
                        <th scope="col" key={a} class="end">
                          {t(`action.${a}`)}
                        </th>
                      ))}
                    </tr>
                  </thead>
                  <tbody>
                    {s.timeline.map((b) => (
                      <tr key={b.start}>
                        <td class="nowrap">{formatShortDateTime(b.start, locale)}</td>
                        {STACK.map((a) => (
                          <td key={a} class="end num">
                            {formatNumber(b[a], locale)}
                          </td>
                        ))}
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </details>
          </>
        )}
      </section>
      <div class="chart-grid">
        <section class="panel">
          <h2>{t("charts.topServices")}</h2>
          <RankedBars items={s.top_services} testid="chart-top-services" label={t("charts.topServices")} />
        </section>
        <section class="panel">
          <h2>{t("charts.topUsers")}</h2>
          <RankedBars items={s.top_users} testid="chart-top-users" label={t("charts.topUsers")} />
        </section>
        <section class="panel">
          <h2>{t("charts.topPrograms")}</h2>
          <RankedBars items={s.top_programs} testid="chart-top-programs" label={t("charts.topPrograms")} />
        </section>
      </div>
      <section class="panel">
        <h2>{t("charts.justifications")}</h2>
        {s.justifications.length === 0 ? (
          <p class="muted small">{t("charts.noData")}</p>
        ) : (
          <div class="table-wrap">
            <table class="table">
              <thead>
                <tr>
                  <th scope="col">{t("activity.col.time")}</th>
                  <th scope="col">{t("charts.col.user")}</th>
                  <th scope="col">{t("activity.col.service")}</th>
                  <th scope="col">{t("activity.col.action")}</th>
                  <th scope="col">{t("activity.col.kind")}</th>
                  <th scope="col">{t("activity.col.text")}</th>
                </tr>
              </thead>
              <tbody>
                {s.justifications.map((a) => (
                  <tr key={`${a.event_id}-${a.ts}`} data-testid="justification-row">
                    <td class="nowrap num">{formatDateTime(a.ts, locale)}</td>
                    <td>{a.user ?? (a.uid !== null ? String(a.uid) : t("app.none"))}</td>
                    <td>{a.service_id}</td>
                    <td>
                      <ActionBadge action={a.action} />
                    </td>
                    <td>{answerKind(a.kind, i18n)}</td>
                    <td class="text-cell">{a.text ?? t("app.none")}</td>
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
