import { useI18n } from "../i18n";
import { errorText, isForbidden } from "../lib/errors";

/** The panel shown when the agent refuses a security-team command. */
export function ForbiddenPanel() {
  const { t } = useI18n();
  return (
    <section class="panel forbidden" data-testid="forbidden-panel" role="alert">
      <h2>{t("forbidden.title")}</h2>
      <p>{t("forbidden.body")}</p>
    </section>
  );
}

/** A command's failure: the forbidden panel, or the error and a retry button. */
export function ErrorBox({ error, onRetry, testid }: { error: unknown; onRetry?: () => void; testid?: string }) {
  const i18n = useI18n();
  if (isForbidden(error)) return <ForbiddenPanel />;
  return (
    <div class="error-box" role="alert" data-testid={testid}>
      <span>{errorText(error, i18n)}</span>
      {onRetry && (
        <button type="button" class="btn btn-small" onClick={onRetry}>
          {i18n.t("app.retry")}
        </button>
      )}
    </div>
  );
}
