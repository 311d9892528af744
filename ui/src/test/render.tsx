import { render } from "@testing-library/preact";
import type { ComponentChildren } from "preact";

import { I18nContext, makeI18n, type Locale } from "../i18n";

export function renderIn(ui: ComponentChildren, locale: Locale = "fr") {
  return render(<I18nContext.Provider value={makeI18n(locale)}>{ui}</I18nContext.Provider>);
}

/** Calls recorded by a mock IPC handler. */
export type Calls = { cmd: string; args: Record<string, unknown> }[];
