import { createContext } from "preact";
import { useContext } from "preact/hooks";

import { en } from "./en";
import { fr, type MessageKey } from "./fr";

export type { MessageKey } from "./fr";

export type Locale = "fr" | "en";
export const LOCALES: readonly Locale[] = ["fr", "en"];
export const DICTIONARIES: Record<Locale, Record<MessageKey, string>> = { fr, en };

const STORAGE_KEY = "vigie.locale";

export type Vars = Record<string, string | number>;

/** Fills `{name}` placeholders; an unknown placeholder is left as is. */
export function interpolate(template: string, vars?: Vars): string {
  if (!vars) return template;
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : whole,
  );
}

/**
 * The session's language as the Rust side reads it from the user's locale
 * settings (the web view reports "en-US" when the C library lacks the
 * user's locale); set once at start-up, before the first render.
 */
let sessionLanguages: readonly string[] = [];
export function setSessionLanguage(language: string): void {
  sessionLanguages = [language];
}

/** The locale to start with: the stored choice, else the session's, else the browser's, else French. */
export function initialLocale(
  stored: string | null = safeStorageGet(STORAGE_KEY),
  languages: readonly string[] = [
    ...sessionLanguages,
    ...(typeof navigator === "undefined" ? [] : navigator.languages ?? [navigator.language]),
  ],
): Locale {
  if (stored === "fr" || stored === "en") return stored;
  for (const lang of languages) {
    const base = lang.toLowerCase().split("-")[0];
    if (base === "fr") return "fr";
    if (base === "en") return "en";
  }
  return "fr";
}

export function storeLocale(locale: Locale): void {
  try {
    localStorage.setItem(STORAGE_KEY, locale);
  } catch {
    // Storage may be unavailable (private mode): the choice then lasts this session.
  }
}

function safeStorageGet(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

export interface I18n {
  locale: Locale;
  /** Translate a key, filling `{placeholders}`. */
  t: (key: MessageKey, vars?: Vars) => string;
  /** Translate `key.one` / `key.other` by the plural rule for `n` (also passed as `{n}`, formatted). */
  tp: (key: string, n: number, vars?: Vars) => string;
  setLocale: (locale: Locale) => void;
}

export function makeI18n(locale: Locale, setLocale: (l: Locale) => void = () => {}): I18n {
  const dict = DICTIONARIES[locale];
  const plural = new Intl.PluralRules(locale);
  const number = new Intl.NumberFormat(locale);
  const t = (key: MessageKey, vars?: Vars) => interpolate(dict[key] ?? key, vars);
  const tp = (key: string, n: number, vars?: Vars) => {
    const cat = plural.select(n) === "one" ? "one" : "other";
    const k = `${key}.${cat}` as MessageKey;
    return interpolate(dict[k] ?? k, { ...vars, n: number.format(n) });
  };
  return { locale, t, tp, setLocale };
}

export const I18nContext = createContext<I18n>(makeI18n("fr"));

export function useI18n(): I18n {
  return useContext(I18nContext);
}
