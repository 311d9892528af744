import { describe, expect, it } from "vitest";

import { sampleEvent } from "../dev/fixtures";
import { makeI18n } from "../i18n";
import type { Event } from "../ipc/gen/Event";
import { eventMeaning, eventName, parseFindings } from "./clipboard";

const base: Event = { ...sampleEvent(0), source: "clipboard", name: "nir:1 email:2", action: "block" };

describe("clipboard events", () => {
  it("parse what the agent wrote, and nothing malformed", () => {
    expect(parseFindings("nir:1 email:2")).toEqual([
      { detector: "nir", count: 1 },
      { detector: "email", count: 2 },
    ]);
    expect(parseFindings("nir:x :3 email:0 ok:1")).toEqual([{ detector: "ok", count: 1 }]);
  });

  it("read in French and English; network events are left as they are", () => {
    const fr = makeI18n("fr");
    expect(eventName(base, fr)).toBe("Presse-papiers : numéro de sécurité sociale (NIR) ×1, adresse e-mail ×2");
    expect(eventMeaning(base, fr)).toBe("Contenu sensible retiré du presse-papiers");
    const en = makeI18n("en");
    expect(eventName({ ...base, name: "iban:1 future-detector:4" }, en)).toBe("Clipboard: IBAN ×1, future-detector ×4");
    expect(eventName({ ...base, name: "org-clients:1" }, fr)).toBe("Presse-papiers : donnée de l'organisation « clients » ×1");
    expect(eventName({ ...base, name: "org-staff-ids:2" }, en)).toBe("Clipboard: organisation data “staff-ids” ×2");
    expect(eventMeaning({ ...base, action: "warn" }, en)).toBe("Warned: sensitive content in the clipboard");
    const dns = { ...base, source: "dns", name: "chatgpt.com" };
    expect(eventName(dns, fr)).toBe("chatgpt.com");
    expect(eventMeaning(dns, fr)).toBe("Bloqué : le service n'est pas autorisé");
  });
});
