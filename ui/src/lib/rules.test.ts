import { describe, expect, it } from "vitest";

import { POLICY } from "../dev/fixtures";
import { makeI18n } from "../i18n";
import type { Rule } from "../ipc/gen/Rule";
import { countryName, describeRule, formatDuration, groupRules, orList } from "./rules";

const fr = makeI18n("fr");
const en = makeI18n("en");
const names = new Map([
  ["chatgpt", "ChatGPT"],
  ["claude", "Claude"],
]);
const rule = (over: Partial<Rule>): Rule => ({
  id: "r",
  action: "block",
  reason: null,
  services: [],
  categories: [],
  vendors: [],
  jurisdictions: [],
  jurisdictions_except: [],
  trains_on_inputs: null,
  users: [],
  groups: [],
  programs: [],
  ...over,
});

describe("describeRule", () => {
  it("says what a jurisdiction rule does, in both languages", () => {
    const r = POLICY.rules[0]!;
    expect(describeRule(r, fr, names)).toEqual({
      sentence: "Accès bloqué",
      criteria: ["hébergés dans : Chine ou Russie"],
      reason: "Les données saisies sont hébergées hors de l'UE, sans garanties équivalentes au RGPD.",
    });
    expect(describeRule(r, en, names).criteria).toEqual(["hosted in: China or Russia"]);
  });

  it("names services, categories and every other criterion", () => {
    const d = describeRule(
      rule({
        action: "coach",
        services: ["chatgpt", "claude", "unknown-svc"],
        categories: ["code-assistant"],
        vendors: ["OpenAI"],
        jurisdictions_except: ["FR"],
        trains_on_inputs: "yes",
        users: ["alice"],
        groups: ["devs"],
        programs: ["code", "/usr/bin/firefox"],
      }),
      fr,
      names,
    );
    expect(d.sentence).toBe("Accès après justification");
    expect(d.criteria).toEqual([
      "services : ChatGPT, Claude ou unknown-svc",
      "catégories : assistants de code",
      "éditeurs : OpenAI",
      "hébergés hors de : France",
      "qui entraînent leurs modèles sur vos saisies",
      "utilisateurs : alice",
      "groupes : devs",
      "programmes : code ou /usr/bin/firefox",
    ]);
    expect(d.reason).toBeNull();
  });

  it("says when a rule matches everything", () => {
    expect(describeRule(rule({ action: "allow" }), en, names)).toEqual({
      sentence: "Access allowed",
      criteria: ["for every generative-AI service"],
      reason: null,
    });
  });

  it("groups rules for employees, monitor with allow, keeping their order", () => {
    const g = groupRules(POLICY.rules);
    expect(g.block.map((x) => x.n)).toEqual([1, 2]);
    expect(g.coach.map((x) => x.rule.id)).toEqual(["coach-code-assistants"]);
    expect(g.allow.map((x) => x.rule.id)).toEqual(["monitor-model-hubs"]);
    expect(g.warn.map((x) => x.n)).toEqual([5]);
  });

  it("formats durations and lists", () => {
    expect(formatDuration(240, fr)).toBe("4 heures");
    expect(formatDuration(60, en)).toBe("1 hour");
    expect(formatDuration(90, fr)).toBe("90 minutes");
    expect(formatDuration(1, en)).toBe("1 minute");
    expect(orList(["a"], "fr")).toBe("a");
    expect(orList([], "en")).toBe("");
    expect(countryName("us", "fr")).toBe("États-Unis");
    expect(countryName("not-a-region", "fr")).toBe("not-a-region");
  });
});
