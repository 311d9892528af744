// Test and development helpers around @tauri-apps/api's IPC mocks, so that
// only ui/src/ipc/ imports @tauri-apps/api. Never imported by the app itself.
import { emit } from "@tauri-apps/api/event";
import { clearMocks, mockIPC, mockWindows } from "@tauri-apps/api/mocks";

import type { CommandError } from "./gen/CommandError";

export type Handler = (cmd: string, args: Record<string, unknown>) => unknown;

/** Routes every command to `handler`, and events through the mock event bus. */
export function installMock(handler: Handler): void {
  mockIPC((cmd, args) => handler(cmd, (args ?? {}) as Record<string, unknown>), { shouldMockEvents: true });
}

export { clearMocks };

/** Runs the code under test as in the window labelled `label` (`getCurrentWindow()` then works). */
export const inWindow = (label: string) => mockWindows(label);

/** Emits an event as the Rust side would. */
export const emitEvent = (event: string, payload: unknown) => emit(event, payload);

/** A rejection as the Rust commands give it. */
export function commandError(kind: CommandError["kind"], message: string = kind): CommandError {
  return { kind, message };
}
