import { render } from "preact";

import { App } from "./app";
import { setSessionLanguage } from "./i18n";
import { sessionLocale } from "./ipc/commands";
import "uplot/dist/uPlot.min.css";
import "./styles.css";

async function start() {
  // Development outside Tauri: sample data behind a mocked IPC. The condition is
  // false in a production build, so the mock is not bundled.
  if ((import.meta.env.DEV || import.meta.env.VITE_VIGIE_MOCK === "1") && !("__TAURI_INTERNALS__" in window)) {
    const { installDevMock } = await import("./dev/mock");
    installDevMock();
  }
  try {
    setSessionLanguage(await sessionLocale());
  } catch {
    // No answer: the web view's language decides.
  }
  const root = document.getElementById("app");
  if (root) render(<App />, root);
}

void start();
