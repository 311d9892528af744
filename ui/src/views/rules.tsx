// "Règles": the policy in force, in plain words for employees.
import { useMemo } from "preact/hooks";

import { ActionBadge } from "../components/ActionBadge";
import { ErrorBox } from "../components/ErrorBox";
import { useI18n } from "../i18n";
import { catalog, policy } from "../ipc/commands";
import type { ClipboardPolicy } from "../ipc/gen/ClipboardPolicy";
import type { Family } from "../ipc/gen/Family";
import { describeRule, formatDuration, groupRules, RULE_GROUPS } from "../lib/rules";
import { useCommand } from "../lib/useCommand";

export function RulesView() {
  const i18n = useI18n();
  const { t } = i18n;
  const pol = useCommand(() => policy(), []);
  const cat = useCommand(() => catalog().catch(() => null), []);
  const names = useMemo(() => new Map((cat.data?.services ?? []).map((s) => [s.id, s.name] as const)), [cat.data]);

  if (pol.error !== undefined && !pol.data) {
    return (
      <div class="view">
        <ErrorBox error={pol.error} onRetry={pol.reload} />
      </div>
    );
  }
  if (!pol.data) return <p class="muted view">{t("app.loading")}</p>;
  const p = pol.data.policy;
  const groups = groupRules(p.rules);
  return (
    <div class="view">
      <div class="view-head">
        <h1>{t("rules.title")}</h1>
        <p class="muted">{t("rules.intro", { name: p.name, version: p.version })}</p>
      </div>
      <div class="rules-grid">
        {RULE_GROUPS.map((g) => (
          <section key={g} class={`panel rule-group group-${g}`} aria-labelledby={`rg-${g}`}>
            <h2 id={`rg-${g}`}>
              <span class={`group-bar bar-${g}`} aria-hidden="true" />
              {t(`rules.group.${g}`)}
            </h2>
            {groups[g].length === 0 && <p class="muted small">{t("rules.emptyGroup")}</p>}
            <ul class="rule-list">
              {groups[g].map(({ rule, n }) => {
                const d = describeRule(rule, i18n, names);
                return (
                  <li key={rule.id} class="rule-item">
                    <div class="rule-line">
                      <ActionBadge action={rule.action} />
                      <strong class="rule-sentence">{d.sentence}</strong>
                    </div>
                    <ul class="criteria">
                      {d.criteria.map((c) => (
                        <li key={c}>{c}</li>
                      ))}
                    </ul>
                    {d.reason && <p class="rule-reason">{t("rules.reason", { reason: d.reason })}</p>}
                    <p class="small muted">
                      {t("rules.ruleN", { n })} · <span class="mono">{rule.id}</span>
                    </p>
                  </li>
                );
              })}
            </ul>
          </section>
        ))}
      </div>
      <section class="panel">
        <p>
          <ActionBadge action={p.default_action} />{" "}
          {t("rules.default", { action: t(`rules.sentence.${p.default_action}`).toLocaleLowerCase(i18n.locale) })}
        </p>
        <dl class="facts">
          <dt>{t("rules.alternative")}</dt>
          <dd>
            {p.alternative.name} — <span class="mono">{p.alternative.url}</span>
          </dd>
          <dt>{t("rules.coach")}</dt>
          <dd>
            {t("rules.coachText", {
              chars: p.coach.min_justification_chars,
              duration: formatDuration(p.coach.bypass_minutes, i18n),
            })}
          </dd>
        </dl>
      </section>
      <ClipboardPanel clipboard={p.clipboard} />
    </div>
  );
}

const FAMILIES: Family[] = ["secret", "personal-data", "marking", "source-code", "organisation"];

/** What the clipboard guard watches and does: employees are told. */
function ClipboardPanel({ clipboard }: { clipboard: ClipboardPolicy }) {
  const { t } = useI18n();
  const families = FAMILIES.filter((f) => clipboard.detectors.families.includes(f));
  return (
    <section class="panel" aria-labelledby="rules-clipboard" data-testid="rules-clipboard">
      <h2 id="rules-clipboard">{t("rules.clipboard.title")}</h2>
      {!clipboard.enabled || families.length === 0 ? (
        <p>{t("rules.clipboard.off")}</p>
      ) : (
        <>
          <p>{t("rules.clipboard.intro")}</p>
          <ul class="criteria">
            {families.map((f) => {
              const action = clipboard.actions[f] ?? "monitor";
              return (
                <li key={f}>
                  {t("rules.clipboard.line", {
                    family: t(`rules.clipboard.family.${f}`),
                    action: t(`rules.clipboard.action.${action}`),
                  })}
                </li>
              );
            })}
          </ul>
          <p class="small muted">{t("rules.clipboard.privacy")}</p>
        </>
      )}
    </section>
  );
}
