// Formatting of agent values (times in microseconds since the epoch) per locale.
import type { Locale } from "../i18n";

const cache = new Map<string, Intl.DateTimeFormat | Intl.NumberFormat>();

function dtf(locale: Locale, opts: Intl.DateTimeFormatOptions, timeZone?: string): Intl.DateTimeFormat {
  const key = `d|${locale}|${timeZone ?? ""}|${JSON.stringify(opts)}`;
  let f = cache.get(key) as Intl.DateTimeFormat | undefined;
  if (!f) {
    f = new Intl.DateTimeFormat(locale === "fr" ? "fr-FR" : "en-GB", { ...opts, ...(timeZone ? { timeZone } : {}) });
    cache.set(key, f);
  }
  return f;
}

export const microsToDate = (micros: number): Date => new Date(Math.floor(micros / 1000));
export const dateToMicros = (d: Date): number => d.getTime() * 1000;

/** "27/11/2026 14:05:09" (fr) / "27/11/2026, 14:05:09" (en). */
export function formatDateTime(micros: number, locale: Locale, timeZone?: string): string {
  return dtf(locale, { dateStyle: "short", timeStyle: "medium" }, timeZone).format(microsToDate(micros));
}

/** "14:05" in both locales (24-hour clock, as used in France and the UK). */
export function formatTime(micros: number, locale: Locale, timeZone?: string): string {
  return dtf(locale, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }, timeZone).format(microsToDate(micros));
}

/** "27 nov." / "27 Nov". */
export function formatDate(micros: number, locale: Locale, timeZone?: string): string {
  return dtf(locale, { day: "numeric", month: "short" }, timeZone).format(microsToDate(micros));
}

/** "27 nov., 14:05" — for chart axes and compact lists. */
export function formatShortDateTime(micros: number, locale: Locale, timeZone?: string): string {
  return dtf(locale, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }, timeZone).format(
    microsToDate(micros),
  );
}

export function formatNumber(n: number, locale: Locale): string {
  const key = `n|${locale}`;
  let f = cache.get(key) as Intl.NumberFormat | undefined;
  if (!f) {
    f = new Intl.NumberFormat(locale === "fr" ? "fr-FR" : "en-GB");
    cache.set(key, f);
  }
  return f.format(n);
}

/** Query time: one decimal under 10 ms, whole milliseconds above. */
export function formatMs(ms: number, locale: Locale): string {
  const digits = ms < 10 ? 1 : 0;
  return new Intl.NumberFormat(locale === "fr" ? "fr-FR" : "en-GB", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  }).format(ms);
}

/** The first letter or digit of a service name, upper-cased, for its avatar. */
export function initial(name: string): string {
  const m = /[\p{L}\p{N}]/u.exec(name);
  return m ? m[0].toLocaleUpperCase() : "?";
}

/** A stable small hash of a string (FNV-1a), e.g. to pick an avatar colour. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
