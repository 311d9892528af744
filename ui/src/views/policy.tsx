// "Politique": the policy in force, as the security team wrote it, and
// whether the latest change to its file was taken.
import { useMemo } from "preact/hooks";

import { ActionBadge } from "../components/ActionBadge";
import { DataTable, type DataColumn } from "../components/DataTable";
import { ErrorBox } from "../components/ErrorBox";
import { useI18n } from "../i18n";
import { catalog, policy } from "../ipc/commands";
import type { Rule } from "../ipc/gen/Rule";
import { describeRule, formatDuration } from "../lib/rules";
import { useCommand } from "../lib/useCommand";

export function PolicyView() {
  const i18n = useI18n();
  const { t, locale } = i18n;
  const pol = useCommand(() => policy(), []);
  const cat = useCommand(() => catalog().catch(() => null), []);
  const names = useMemo(() => new Map((cat.data?.services ?? []).map((s) => [s.id, s.name] as const)), [cat.data]);

  if (pol.error !== undefined && !pol.data) return <ErrorBox error={pol.error} onRetry={pol.reload} />;
  if (!pol.data) return <p class="muted">{t("app.loading")}</p>;
  const { policy: p, reload_error } = pol.data;
  const yesNo = (b: boolean) => (b ? t("app.yes") : t("app.no"));
  const ruleColumns: DataColumn<Rule>[] = [
    // Rules apply first match wins: the order is part of the policy.
    { header: t("policy.col.order"), class: "num", cell: (_, i) => i + 1 },
    { header: t("policy.col.id"), class: "mono", cell: (r) => r.id },
    { header: t("policy.col.action"), cell: (r) => <ActionBadge action={r.action} /> },
    {
      header: t("policy.col.match"),
      cell: (r) => (
        <ul class="plain">
          {describeRule(r, i18n, names).criteria.map((c) => (
            <li key={c}>{c}</li>
          ))}
        </ul>
      ),
    },
    { header: t("policy.col.reason"), class: "text-cell", cell: (r) => (r.reason ? r.reason[locale] : t("app.none")) },
  ];
  return (
    <div class="policy">
      {reload_error !== null ? (
        <div class="alert alert-error" role="alert" data-testid="policy-error">
          <p>
            <strong>{t("policy.rejected")}</strong>
          </p>
          <pre>{reload_error}</pre>
        </div>
      ) : (
        <p class="alert alert-ok" role="status">
          {t("policy.valid")}
        </p>
      )}
      <section class="panel">
        <dl class="facts two-col">
          <div class="fact">
            <dt>{t("policy.name")}</dt>
            <dd>{p.name}</dd>
          </div>
          <div class="fact">
            <dt>{t("policy.version")}</dt>
            <dd class="mono">{p.version}</dd>
          </div>
          <div class="fact">
            <dt>{t("policy.default")}</dt>
            <dd>
              <ActionBadge action={p.default_action} />
            </dd>
          </div>
          <div class="fact">
            <dt>{t("policy.failureMode")}</dt>
            <dd>{t(`policy.failure.${p.failure_mode}`)}</dd>
          </div>
          <div class="fact">
            <dt>{t("policy.unreadableHandshake")}</dt>
            <dd>{t(`policy.unreadable.${p.unreadable_handshake}`)}</dd>
          </div>
          <div class="fact">
            <dt>{t("policy.alternative")}</dt>
            <dd>
              {p.alternative.name} — <span class="mono">{p.alternative.url}</span>
            </dd>
          </div>
          <div class="fact">
            <dt>{t("policy.coach")}</dt>
            <dd>
              {t("policy.coachValue", {
                chars: p.coach.min_justification_chars,
                duration: formatDuration(p.coach.bypass_minutes, i18n),
              })}
            </dd>
          </div>
        </dl>
        <h3>{t("policy.dns")}</h3>
        <dl class="facts two-col">
          <div class="fact">
            <dt>{t("policy.dns.blockedAnswer")}</dt>
            <dd>{t(`policy.dns.answer.${p.dns.blocked_answer}`)}</dd>
          </div>
          <div class="fact">
            <dt>{t("policy.dns.doh")}</dt>
            <dd>{yesNo(p.dns.block_doh_resolvers)}</dd>
          </div>
          <div class="fact">
            <dt>{t("policy.dns.resolved")}</dt>
            <dd>{yesNo(p.dns.block_resolved_addresses)}</dd>
          </div>
        </dl>
      </section>
      <section class="panel">
        <h2>{t("policy.rules")}</h2>
        <DataTable columns={ruleColumns} rows={p.rules} rowKey={(r) => r.id} rowTestId={() => "policy-rule"} />
      </section>
    </div>
  );
}
