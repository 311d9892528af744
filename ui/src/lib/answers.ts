// Wording of an employee's answers (justifications, exception requests,
// acknowledgements), shared by "Mon activité" and the security charts.
import type { I18n } from "../i18n";
import type { Answer } from "../ipc/gen/Answer";
import { formatShortDateTime, formatTime } from "./format";

export function answerKind(kind: string, { t }: I18n): string {
  return kind === "justified" || kind === "exception-requested" || kind === "acknowledged" ? t(`answer.kind.${kind}`) : kind;
}

/** What became of an answer, at `nowMs`. */
export function answerStatus(a: Answer, i18n: I18n, nowMs: number): string {
  const { t, locale } = i18n;
  if (a.kind === "justified") {
    if (a.bypass_until !== null && a.bypass_until > nowMs * 1000) {
      const sameDay = new Date(a.bypass_until / 1000).toDateString() === new Date(nowMs).toDateString();
      const time = sameDay ? formatTime(a.bypass_until, locale) : formatShortDateTime(a.bypass_until, locale);
      return t("answer.status.until", { time });
    }
    return t("answer.status.expired");
  }
  if (a.kind === "exception-requested") return t("answer.status.sent");
  return t("answer.status.ack");
}
