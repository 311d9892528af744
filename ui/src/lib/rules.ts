// The policy in plain words, for employees ("Règles") and the security team.
import type { I18n, Locale, MessageKey } from "../i18n";
import type { Action } from "../ipc/gen/Action";
import type { Rule } from "../ipc/gen/Rule";

export interface RuleDescription {
  /** "Accès bloqué", … */
  sentence: string;
  /** What the rule matches, one phrase per criterion (all must hold). */
  criteria: string[];
  reason: string | null;
}

/** A list in the locale: "Chine ou Russie" / "China or Russia" (values within a criterion are alternatives). */
export function orList(items: string[], locale: Locale): string {
  if (items.length === 0) return "";
  try {
    return new Intl.ListFormat(locale, { style: "long", type: "disjunction" }).format(items);
  } catch {
    return items.join(", ");
  }
}

/** "CN" → "Chine" (fr) / "China" (en); the code itself if unknown. */
export function countryName(code: string, locale: Locale): string {
  try {
    const name = new Intl.DisplayNames([locale], { type: "region" }).of(code.toUpperCase());
    return name && name !== code.toUpperCase() ? name : code;
  } catch {
    return code;
  }
}

export function categoryName(category: string, i18n: I18n): string {
  const key = `category.${category}` as MessageKey;
  const text = i18n.t(key);
  return text === key ? category : text;
}

export function describeRule(rule: Rule, i18n: I18n, serviceNames: ReadonlyMap<string, string>): RuleDescription {
  const { t, locale } = i18n;
  const list = (items: string[]) => orList(items, locale);
  const criteria: string[] = [];
  if (rule.services.length) {
    criteria.push(t("rules.match.services", { list: list(rule.services.map((s) => serviceNames.get(s) ?? s)) }));
  }
  if (rule.categories.length) {
    criteria.push(t("rules.match.categories", { list: list(rule.categories.map((c) => categoryName(c, i18n))) }));
  }
  if (rule.vendors.length) criteria.push(t("rules.match.vendors", { list: list(rule.vendors) }));
  if (rule.jurisdictions.length) {
    criteria.push(t("rules.match.jurisdictions", { list: list(rule.jurisdictions.map((j) => countryName(j, locale))) }));
  }
  if (rule.jurisdictions_except.length) {
    criteria.push(
      t("rules.match.jurisdictionsExcept", {
        list: list(rule.jurisdictions_except.map((j) => countryName(j, locale))),
      }),
    );
  }
  if (rule.trains_on_inputs) criteria.push(t(`rules.match.trains.${rule.trains_on_inputs}`));
  if (rule.users.length) criteria.push(t("rules.match.users", { list: list(rule.users) }));
  if (rule.groups.length) criteria.push(t("rules.match.groups", { list: list(rule.groups) }));
  if (rule.programs.length) criteria.push(t("rules.match.programs", { list: list(rule.programs) }));
  if (criteria.length === 0) criteria.push(t("rules.matchAll"));
  return {
    sentence: t(`rules.sentence.${rule.action}`),
    criteria,
    reason: rule.reason ? rule.reason[locale] : null,
  };
}

/** The groups of the "Règles" view, in display order; monitor counts as allowed. */
export const RULE_GROUPS = ["allow", "coach", "block", "warn"] as const;
export type RuleGroup = (typeof RULE_GROUPS)[number];

export function ruleGroup(action: Action): RuleGroup {
  return action === "monitor" ? "allow" : action;
}

/** Rules per group, each with its position in the policy (1-based), order kept. */
export function groupRules(rules: Rule[]): Record<RuleGroup, { rule: Rule; n: number }[]> {
  const out: Record<RuleGroup, { rule: Rule; n: number }[]> = { allow: [], coach: [], block: [], warn: [] };
  rules.forEach((rule, i) => out[ruleGroup(rule.action)].push({ rule, n: i + 1 }));
  return out;
}

/** "4 heures", "90 minutes". */
export function formatDuration(minutes: number, i18n: I18n): string {
  if (minutes >= 60 && minutes % 60 === 0) return i18n.tp("duration.hours", minutes / 60);
  return i18n.tp("duration.minutes", minutes);
}
