// Clipboard events name what the detectors found, as `nir:1 email:2`
// (the agent's `detectors_label`): shown to people in their words.
import type { I18n, MessageKey } from "../i18n";
import type { Event } from "../ipc/gen/Event";

export interface Found {
  detector: string;
  count: number;
}

export function parseFindings(name: string): Found[] {
  return name
    .split(" ")
    .map((part) => {
      const at = part.lastIndexOf(":");
      const count = Number(part.slice(at + 1));
      return { detector: part.slice(0, at), count };
    })
    .filter((f) => f.detector !== "" && Number.isInteger(f.count) && f.count > 0);
}

/** The event's name column: a host name, or what a copy contained. */
export function eventName(e: Event, { t }: Pick<I18n, "t">): string {
  if (e.source !== "clipboard") return e.name;
  const found = parseFindings(e.name)
    .map((f) => {
      const key = `detector.${f.detector}` as MessageKey;
      const label = t(key);
      return t("prompt.clipboard.count", { label: label === key ? f.detector : label, n: f.count });
    })
    .join(", ");
  return t("activity.clipboard", { found });
}

/** What the decision meant for the person. */
export function eventMeaning(e: Event, { t }: Pick<I18n, "t">): string {
  if (e.source === "clipboard" && (e.action === "block" || e.action === "warn" || e.action === "monitor")) {
    return t(`meaning.clipboard.${e.action}`);
  }
  return t(`meaning.${e.action}`);
}
