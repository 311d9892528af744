// Clipboard events name what the detectors found, as `nir:1 email:2`
// (the agent's `detectors_label`): shown to people in their words.
import type { I18n, MessageKey } from "../i18n";
import type { Event } from "../ipc/gen/Event";
import { kindLabel } from "./software";

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

/** A detector in people's words; the organisation's own (`org-…`) by
 * their name in the policy. */
export function detectorLabel(detector: string, { t }: Pick<I18n, "t">): string {
  const key = `detector.${detector}` as MessageKey;
  const label = t(key);
  if (label !== key) return label;
  if (detector.startsWith("org-")) return t("detector.org", { name: detector.slice("org-".length) });
  return detector;
}

/** The event's name column: a host name, or what a copy contained. */
export function eventName(e: Event, { t }: Pick<I18n, "t">): string {
  if (e.source === "inventory") {
    // The software's kind is its protocol, its version the destination.
    return t("activity.software", { kind: kindLabel(e.protocol, { t }), name: e.dst ? `${e.name} ${e.dst}` : e.name });
  }
  if (e.source !== "clipboard") return e.name;
  const found = parseFindings(e.name)
    .map((f) => t("prompt.clipboard.count", { label: detectorLabel(f.detector, { t }), n: f.count }))
    .join(", ");
  return t("activity.clipboard", { found });
}

/** What the decision meant for the person. */
export function eventMeaning(e: Event, { t }: Pick<I18n, "t">): string {
  if (e.source === "inventory") {
    const change = e.rule_id.replace(/^inventory:/, "");
    const known = ["installed", "removed", "updated", "rights-changed", "started"];
    return known.includes(change) ? t(`meaning.inventory.${change}` as MessageKey) : e.rule_id;
  }
  if (e.source === "clipboard" && (e.action === "block" || e.action === "warn" || e.action === "monitor")) {
    return t(`meaning.clipboard.${e.action}`);
  }
  return t(`meaning.${e.action}`);
}
