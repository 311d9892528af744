import { useEffect, useRef, useState } from "preact/hooks";
import type uPlot from "uplot";

import { useI18n, type Locale } from "../i18n";
import type { Action } from "../ipc/gen/Action";
import type { TimeBucket } from "../ipc/gen/TimeBucket";
import { formatDate, formatNumber, formatShortDateTime, formatTime } from "../lib/format";

/** Bottom to top of the stack. */
export const STACK: readonly Action[] = ["allow", "monitor", "warn", "coach", "block"];

/** Cumulative sums per action, bottom to top: stacked[i][j] = Σ_{k≤i} bucket_j[STACK[k]]. */
export function stackTimeline(buckets: TimeBucket[]): number[][] {
  const out: number[][] = STACK.map(() => new Array<number>(buckets.length).fill(0));
  buckets.forEach((b, j) => {
    let sum = 0;
    STACK.forEach((a, i) => {
      sum += b[a];
      out[i]![j] = sum;
    });
  });
  return out;
}

/** X axis: the date at midnight, the time otherwise. */
function axisLabel(seconds: number, locale: Locale): string {
  const d = new Date(seconds * 1000);
  return d.getHours() === 0 && d.getMinutes() === 0
    ? formatDate(seconds * 1e6, locale)
    : formatTime(seconds * 1e6, locale);
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

/** Events over time as stacked bars, one colour and one legend label per action. */
export function TimelineChart({ buckets, bucketMicros }: { buckets: TimeBucket[]; bucketMicros: number }) {
  const { t, locale } = useI18n();
  const host = useRef<HTMLDivElement>(null);
  const [themeTick, setThemeTick] = useState(0);

  // Redraw with the new colours when the theme changes.
  useEffect(() => {
    const mo = new MutationObserver(() => setThemeTick((n) => n + 1));
    mo.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    return () => mo.disconnect();
  }, []);

  // uPlot is loaded with the charts view only (a separate chunk).
  const [UPlot, setUPlot] = useState<typeof uPlot | null>(null);
  useEffect(() => {
    let live = true;
    import("uplot").then((m) => live && setUPlot(() => m.default));
    return () => {
      live = false;
    };
  }, []);

  useEffect(() => {
    const el = host.current;
    if (!el || !UPlot || buckets.length === 0) return undefined;
    const xs = buckets.map((b) => b.start / 1e6);
    const stacked = stackTimeline(buckets);
    // Drawn top of the stack first, so each lower action paints over it.
    const order = [...STACK].reverse();
    const raw = order.map((a) => buckets.map((b) => b[a]));
    const data: uPlot.AlignedData = [xs, ...order.map((a) => stacked[STACK.indexOf(a)]!)];
    const axis = cssVar("--text-muted");
    const grid = cssVar("--border");
    const barSize = Math.max(2, Math.min(40, (bucketMicros / 1e6) * 0.8));
    const opts: uPlot.Options = {
      width: Math.max(320, el.clientWidth || 800),
      height: 260,
      padding: [8, 8, 0, 0],
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      legend: { live: true },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, Math.ceil(max * 1.08))] } },
      axes: [
        {
          stroke: axis,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid },
          space: 100,
          values: (_u, splits) => splits.map((s) => axisLabel(s, locale)),
        },
        {
          stroke: axis,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid },
          values: (_u, splits) => splits.map((s) => (Number.isInteger(s) ? formatNumber(s, locale) : "")),
          size: 56,
        },
      ],
      series: [
        { label: t("charts.bucket"), value: (_u, v) => (v == null ? "" : formatShortDateTime(v * 1e6, locale)) },
        ...order.map((a, i) => ({
          label: t(`action.${a}`),
          fill: cssVar(`--action-${a}`),
          stroke: cssVar(`--action-${a}`),
          width: 0,
          paths: UPlot.paths.bars!({ size: [0.8, barSize * 4], align: 1 }),
          points: { show: false },
          value: (_u: uPlot, _v: number | null, _s: number, idx: number | null) =>
            idx == null ? "" : formatNumber(raw[i]![idx] ?? 0, locale),
        })),
      ],
    };
    const plot = new UPlot(opts, data, el);
    const ro =
      typeof ResizeObserver === "undefined"
        ? null
        : new ResizeObserver(() => plot.setSize({ width: Math.max(320, el.clientWidth), height: 260 }));
    ro?.observe(el);
    return () => {
      ro?.disconnect();
      plot.destroy();
    };
  }, [UPlot, buckets, bucketMicros, locale, themeTick]);

  return <div ref={host} class="chart" data-testid="chart-timeline" role="img" aria-label={t("charts.timeline")} />;
}
