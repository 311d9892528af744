// The current window, for the prompt window's "Fermer" after the last prompt.
// Needs the `core:window:allow-hide` permission in the prompt window's capability.
import { getCurrentWindow } from "@tauri-apps/api/window";

export function hideWindow(): void {
  try {
    getCurrentWindow()
      .hide()
      .catch(() => {});
  } catch {
    // Not in Tauri (tests, development): nothing to hide.
  }
}
