import { describe, expect, it } from "vitest";

import { en } from "./en";
import { fr } from "./fr";
import { initialLocale, interpolate, makeI18n } from "./index";

const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe("dictionaries", () => {
  it("have the same keys in French and English", () => {
    expect(Object.keys(en).sort()).toEqual(Object.keys(fr).sort());
  });

  it("have no empty text, and the same placeholders in both languages", () => {
    for (const key of Object.keys(fr) as (keyof typeof fr)[]) {
      expect(fr[key].trim(), key).not.toBe("");
      expect(en[key].trim(), key).not.toBe("");
      expect(placeholders(en[key]), key).toEqual(placeholders(fr[key]));
    }
  });

  it("have both plural forms wherever one is used", () => {
    for (const key of Object.keys(fr)) {
      if (key.endsWith(".one")) expect(Object.keys(fr)).toContain(key.replace(/\.one$/, ".other"));
    }
  });

  it("carry the texts the product relies on", () => {
    expect(fr["prompt.headline.block"]).toBe("L'accès à {service} est bloqué sur ce poste");
    expect(en["prompt.headline.block"]).toBe("Access to {service} is blocked on this workstation");
    expect(fr["prompt.r34"]).toContain("Recommandation R34 de l'ANSSI");
  });
});

describe("translation", () => {
  it("interpolates placeholders, leaving unknown ones", () => {
    expect(interpolate("{a} et {b}", { a: 1 })).toBe("1 et {b}");
    expect(interpolate("x")).toBe("x");
  });

  it("chooses plural forms with formatted numbers", () => {
    expect(makeI18n("fr").tp("events.total", 1)).toBe("1 événement");
    expect(makeI18n("fr").tp("events.total", 1_000_000)).toMatch(/^1\s000\s000 événements$/u);
    expect(makeI18n("en").tp("events.total", 0)).toBe("0 events");
    expect(makeI18n("en").t("prompt.headline.coach", { service: "Claude" })).toBe("Claude: a justification is required");
  });

  it("starts in the stored language, else the browser's, else French", () => {
    expect(initialLocale("en", ["fr-FR"])).toBe("en");
    expect(initialLocale(null, ["en-GB", "fr"])).toBe("en");
    expect(initialLocale(null, ["de-DE", "fr-CA"])).toBe("fr");
    expect(initialLocale("xx", ["de"])).toBe("fr");
  });
});
