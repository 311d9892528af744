// "Graphiques": the same selection as the events table, aggregated.
import { useMemo } from "preact/hooks";

import { ActionBadge } from "../components/ActionBadge";
import { DataTable, type DataColumn } from "../components/DataTable";
import { ErrorBox } from "../components/ErrorBox";
import { RankedBars } from "../components/RankedBars";
import { STACK, TimelineChart } from "../components/TimelineChart";
import { useI18n } from "../i18n";
import { eventStats } from "../ipc/commands";
import type { Answer } from "../ipc/gen/Answer";
import type { EventQuery } from "../ipc/gen/EventQuery";
import type { TimeBucket } from "../ipc/gen/TimeBucket";
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
  // The chart's figures, readable without the canvas (screen readers, copying).
  const timelineColumns: DataColumn<TimeBucket>[] = [
    { header: t("charts.bucket"), class: "nowrap", cell: (b) => formatShortDateTime(b.start, locale) },
    ...STACK.map((a): DataColumn<TimeBucket> => ({
      header: t(`action.${a}`),
      align: "end",
      class: "num",
      cell: (b) => formatNumber(b[a], locale),
    })),
  ];
  const justificationColumns: DataColumn<Answer>[] = [
    { header: t("activity.col.time"), class: "nowrap num", cell: (a) => formatDateTime(a.ts, locale) },
    { header: t("charts.col.user"), cell: (a) => a.user ?? (a.uid !== null ? String(a.uid) : t("app.none")) },
    { header: t("activity.col.service"), cell: (a) => a.service_id },
    { header: t("activity.col.action"), cell: (a) => <ActionBadge action={a.action} /> },
    { header: t("activity.col.kind"), cell: (a) => answerKind(a.kind, i18n) },
    { header: t("activity.col.text"), class: "text-cell", cell: (a) => a.text ?? t("app.none") },
  ];
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
              <DataTable columns={timelineColumns} rows={s.timeline} rowKey={(b) => b.start} compact />
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
        <DataTable
          columns={justificationColumns}
          rows={s.justifications}
          rowKey={(a) => `${a.event_id}-${a.ts}`}
          rowTestId={() => "justification-row"}
          empty={t("charts.noData")}
          emptyClass="muted small"
        />
      </section>
    </div>
  );
}
