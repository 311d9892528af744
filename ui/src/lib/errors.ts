// Command errors (CommandError {kind, message}) as text for the user.
import type { I18n } from "../i18n";
import { isCommandError } from "../ipc/commands";

export function errorText(err: unknown, { t }: I18n): string {
  if (isCommandError(err)) {
    switch (err.kind) {
      case "not-connected":
        return t("error.not-connected");
      case "forbidden":
        return t("error.forbidden");
      case "bad-request":
        return t("error.bad-request", { message: err.message });
      case "internal":
        return t("error.internal", { message: err.message });
      case "not-configured":
        return t("error.not-configured", { message: err.message });
      case "unreachable":
        return t("error.unreachable", { message: err.message });
    }
  }
  return t("error.unknown", { message: err instanceof Error ? err.message : String(err) });
}

export function isForbidden(err: unknown): boolean {
  return isCommandError(err) && err.kind === "forbidden";
}
