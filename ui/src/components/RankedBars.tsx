import { useI18n } from "../i18n";
import type { Ranked } from "../ipc/gen/Ranked";
import { formatNumber } from "../lib/format";

/** Horizontal bars for a top-N list; the count is written, the bar only helps. */
export function RankedBars({ items, testid, label }: { items: Ranked[]; testid?: string; label: string }) {
  const { t, locale } = useI18n();
  const max = Math.max(1, ...items.map((i) => i.count));
  if (items.length === 0) return <p class="muted small">{t("charts.noData")}</p>;
  return (
    <ol class="hbars" data-testid={testid} aria-label={label}>
      {items.map((it) => (
        <li key={it.key} class="hbar">
          <span class="hbar-label" title={it.key}>
            {it.label || it.key}
          </span>
          <span class="hbar-track" aria-hidden="true">
            <span class="hbar-fill" style={{ width: `${(it.count / max) * 100}%` }} />
          </span>
          <span class="hbar-count num">{formatNumber(it.count, locale)}</span>
        </li>
      ))}
    </ol>
  );
}
