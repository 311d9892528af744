// Subscriptions to the Rust side's events that can be dropped at once, even
// before `listen` has resolved (a view unmounted right after mounting).
import type { UnlistenFn } from "@tauri-apps/api/event";

export function subscription(listening: Promise<UnlistenFn>): () => void {
  let done = false;
  let unlisten: UnlistenFn | undefined;
  listening.then(
    (fn) => {
      if (done) safeCall(fn);
      else unlisten = fn;
    },
    () => {
      // Not in Tauri or no event plugin: nothing to drop.
    },
  );
  return () => {
    if (done) return;
    done = true;
    if (unlisten) safeCall(unlisten);
  };
}

function safeCall(fn: UnlistenFn): void {
  try {
    const r: unknown = fn();
    if (r instanceof Promise) r.catch(() => {});
  } catch {
    // The IPC bridge is gone (window closing): the listener goes with it.
  }
}
