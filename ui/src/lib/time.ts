// Time range presets of the security views, and the datetime-local inputs.
import { dateToMicros } from "./format";

export type Preset = "1h" | "24h" | "7d" | "30d" | "all" | "custom";
export const PRESETS: readonly Exclude<Preset, "custom">[] = ["1h", "24h", "7d", "30d", "all"];

const HOUR_MS = 3_600_000;
const PRESET_MS: Record<Exclude<Preset, "custom" | "all">, number> = {
  "1h": HOUR_MS,
  "24h": 24 * HOUR_MS,
  "7d": 7 * 24 * HOUR_MS,
  "30d": 30 * 24 * HOUR_MS,
};

export interface TimeRange {
  preset: Preset;
  /** datetime-local values ("2026-11-27T14:05"), used when preset is "custom". */
  from: string;
  to: string;
}

/** Microsecond bounds for a range at `nowMs`: `from` inclusive, `to` exclusive; absent = open. */
export function resolveRange(range: TimeRange, nowMs: number): { from?: number; to?: number } {
  if (range.preset === "all") return {};
  if (range.preset === "custom") {
    const out: { from?: number; to?: number } = {};
    const from = parseLocalDateTime(range.from);
    const to = parseLocalDateTime(range.to);
    if (from !== undefined) out.from = from;
    if (to !== undefined) out.to = to;
    return out;
  }
  return { from: (nowMs - PRESET_MS[range.preset]) * 1000 };
}

/** A datetime-local value (local time) in microseconds, or undefined if empty or invalid. */
export function parseLocalDateTime(value: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m;
  const date = new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s ?? 0));
  if (Number.isNaN(date.getTime()) || date.getMonth() !== Number(mo) - 1) return undefined;
  return dateToMicros(date);
}

/** Local time as a datetime-local value ("2026-11-27T14:05"). */
export function toLocalDateTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
