import type { Action } from "../ipc/gen/Action";
import { useI18n } from "../i18n";

/** The decision as a coloured label; the text says it, the colour only helps. */
export function ActionBadge({ action }: { action: Action }) {
  const { t } = useI18n();
  return (
    <span class={`badge badge-${action}`}>
      <span class="badge-dot" aria-hidden="true" />
      {t(`action.${action}`)}
    </span>
  );
}
