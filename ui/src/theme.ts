// Light/dark theme: follows prefers-color-scheme unless the user picked one
// in the header (stored). Applied as <html data-theme="light|dark">; the CSS
// keys its colours on it.
export type ThemeChoice = "system" | "light" | "dark";
const STORAGE_KEY = "vigie.theme";

export function storedTheme(): ThemeChoice {
  try {
    const v = localStorage.getItem(STORAGE_KEY);
    if (v === "light" || v === "dark" || v === "system") return v;
  } catch {
    // no storage: system
  }
  return "system";
}

export function storeTheme(choice: ThemeChoice): void {
  try {
    localStorage.setItem(STORAGE_KEY, choice);
  } catch {
    // the choice lasts this session
  }
}

export function systemPrefersDark(): boolean {
  return typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches;
}

export function effectiveTheme(choice: ThemeChoice, prefersDark = systemPrefersDark()): "light" | "dark" {
  return choice === "system" ? (prefersDark ? "dark" : "light") : choice;
}

/** The next choice of the header's theme button. */
export function nextTheme(choice: ThemeChoice): ThemeChoice {
  return choice === "system" ? "light" : choice === "light" ? "dark" : "system";
}

export function applyTheme(choice: ThemeChoice, root: HTMLElement = document.documentElement): "light" | "dark" {
  const eff = effectiveTheme(choice);
  root.dataset.theme = eff;
  return eff;
}

/** Calls `onChange` when the system preference changes; returns the unsubscribe. */
export function watchSystemTheme(onChange: () => void): () => void {
  if (typeof matchMedia !== "function") return () => {};
  const mq = matchMedia("(prefers-color-scheme: dark)");
  mq.addEventListener("change", onChange);
  return () => mq.removeEventListener("change", onChange);
}
