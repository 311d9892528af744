// The inventory's words: kinds of software, changes and rights, as people
// read them. Rights come from the agent as short codes (`all-sites`,
// `env:NAME`, `auto-run:npm test`…): the code's head is translated, its
// value is shown as is.
import type { I18n, MessageKey } from "../i18n";
import type { InventoryRow } from "../ipc/gen/InventoryRow";
import type { Kind } from "../ipc/gen/Kind";

export const KINDS: readonly Kind[] = [
  "browser-extension",
  "editor-extension",
  "jetbrains-plugin",
  "desktop-app",
  "cli-agent",
  "program",
  "local-server",
  "mcp-server",
];

export function kindLabel(kind: string, { t }: Pick<I18n, "t">): string {
  return (KINDS as readonly string[]).includes(kind) ? t(`software.kind.${kind}` as MessageKey) : kind;
}

/** Heads of `head:value` rights with a label of their own. */
const VALUED = ["site", "env", "path", "command", "package", "url", "header", "model", "api", "auto-run", "auto-approve", "allow", "folder", "sandbox", "listen"] as const;
/** Whole rights with a label of their own. */
const WHOLE = [
  "all-sites",
  "clipboard-read",
  "clipboard-write",
  "tabs",
  "cookies",
  "history",
  "downloads",
  "scripting",
  "debugger",
  "native-messaging",
  "web-request",
  "active-tab",
  "storage",
  "disabled",
  "agent-mode",
  "workspace-trust-off",
] as const;

/** Rights whose value is a known word: said in full. */
const WORDED = [
  "auto-approve:all-tools",
  "auto-approve:edits",
  "auto-approve:safe-tools",
  "auto-run:all-commands",
  "auto-run:until-failure",
  "auto-run:terminal",
  "sandbox:full-access",
  "sandbox:workspace-write",
  "listen:network",
] as const;

export function rightLabel(right: string, { t }: Pick<I18n, "t">): string {
  if ((WHOLE as readonly string[]).includes(right) || (WORDED as readonly string[]).includes(right)) {
    return t(`software.right.${right}` as MessageKey);
  }
  const at = right.indexOf(":");
  if (at > 0) {
    const head = right.slice(0, at);
    if ((VALUED as readonly string[]).includes(head)) {
      return t(`software.right.${head}` as MessageKey, { value: right.slice(at + 1) });
    }
  }
  return right;
}

/** Where a find lives: a browser, editor or agent by its name; the profile, the system or a process in words. */
export function hostLabel(host: string, { t }: Pick<I18n, "t">): string {
  return host === "user" || host === "system" || host === "process" ? t(`software.host.${host}`) : host;
}

/** The service a find sends data to, as shown. */
export function destination(row: InventoryRow, services: Map<string, string>, { t }: Pick<I18n, "t">): string {
  if (row.service_id) return services.get(row.service_id) ?? row.service_id;
  return row.local ? t("software.localOnly") : t("software.uncatalogued");
}

export function matchesRow(row: InventoryRow, q: string): boolean {
  const needle = q.trim().toLowerCase();
  if (!needle) return true;
  return [row.name, row.key, row.host, row.user ?? "", row.service_id ?? "", row.version ?? "", ...row.rights].some((v) =>
    v.toLowerCase().includes(needle),
  );
}
