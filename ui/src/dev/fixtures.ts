// Sample data shaped like the agent's answers: the development mock and the
// tests use it. Nothing here is shipped in the production bundle.
import type { Action } from "../ipc/gen/Action";
import type { Answer } from "../ipc/gen/Answer";
import type { CatalogView } from "../ipc/gen/CatalogView";
import type { Event } from "../ipc/gen/Event";
import type { FleetAgent } from "../ipc/gen/FleetAgent";
import type { FleetDecision } from "../ipc/gen/FleetDecision";
import type { FleetException } from "../ipc/gen/FleetException";
import type { FleetFind } from "../ipc/gen/FleetFind";
import type { FleetOverview } from "../ipc/gen/FleetOverview";
import type { Policy } from "../ipc/gen/Policy";
import type { InventoryRow } from "../ipc/gen/InventoryRow";
import type { Prompt } from "../ipc/gen/Prompt";
import type { Service } from "../ipc/gen/Service";

const svc = (
  id: string,
  name: string,
  vendor: string,
  category: Service["category"],
  domains: string[],
  jurisdiction: string,
  trains: Service["trains_on_inputs"],
  notes: string | null = null,
): Service => ({
  id,
  name,
  vendor,
  category,
  domains,
  hosts: [],
  shared_domains: [],
  window_titles: [name],
  extension_ids: [],
  software_ids: [],
  process_names: [],
  runs_locally: false,
  jurisdiction,
  trains_on_inputs: trains,
  source: `https://example.org/${id}/privacy`,
  retention: null,
  enterprise_tier: null,
  notes,
});

export const SERVICES: Service[] = [
  svc("chatgpt", "ChatGPT", "OpenAI", "chat", ["chatgpt.com", "chat.openai.com", "oaistatic.com"], "US", "yes", "Consumer ChatGPT; trains unless opted out."),
  svc("claude", "Claude", "Anthropic", "chat", ["claude.ai", "claude.com"], "US", "yes"),
  svc("gemini", "Gemini", "Google", "chat", ["gemini.google.com", "gemini.google"], "US", "yes"),
  svc("le-chat", "Le Chat", "Mistral AI", "chat", ["chat.mistral.ai"], "FR", "no"),
  svc("deepseek", "DeepSeek", "DeepSeek", "chat", ["deepseek.com", "chat.deepseek.com"], "CN", "yes"),
  svc("perplexity", "Perplexity", "Perplexity AI", "search", ["perplexity.ai"], "US", "yes"),
  svc("copilot", "Microsoft Copilot", "Microsoft", "chat", ["copilot.microsoft.com"], "US", "no"),
  svc("github-copilot", "GitHub Copilot", "GitHub", "code-assistant", ["githubcopilot.com"], "US", "no"),
  svc("cursor", "Cursor", "Anysphere", "code-assistant", ["cursor.sh", "cursor.com"], "US", "unknown"),
  svc("huggingface", "Hugging Face", "Hugging Face", "model-hub", ["huggingface.co", "hf.co"], "US", "unknown"),
  svc("midjourney", "Midjourney", "Midjourney", "image", ["midjourney.com"], "US", "yes"),
  svc("notebooklm", "NotebookLM", "Google", "chat", ["notebooklm.google.com"], "US", "no"),
  svc("deepl-write", "DeepL Write", "DeepL", "writing", ["deepl.com"], "DE", "unknown"),
  svc("kimi", "Kimi", "Moonshot AI", "chat", ["kimi.ai", "kimi.moonshot.cn"], "CN", "yes"),
];
SERVICES[0]!.hosts = ["ios.chat.openai.com"];
SERVICES[2]!.shared_domains = ["www.google.com", "docs.google.com"];

export const CATALOG: CatalogView = { version: "2026.11.27", services: SERVICES };

const txt = (fr: string, en: string) => ({ fr, en });

export const POLICY: Policy = {
  name: "Vigie R34 baseline",
  version: "2026-11-27.1",
  default_action: "coach",
  failure_mode: "open",
  unreadable_handshake: "block",
  alternative: { name: "Assistant IA interne", url: "https://assistant-ia.intranet.example" },
  coach: { bypass_minutes: 240, min_justification_chars: 20 },
  messages: {
    warn: txt(
      "Vous accédez à un service d'IA générative public. N'y saisissez aucune donnée sensible ou non publique.",
      "You are reaching a public generative-AI service. Do not enter any sensitive or non-public data.",
    ),
    coach: txt(
      "Ce service d'IA générative public n'est pas approuvé pour un usage professionnel. Indiquez pourquoi vous en avez besoin, ou utilisez l'assistant interne.",
      "This public generative-AI service is not approved for work. Say why you need it, or use the internal assistant.",
    ),
    block: txt(
      "L'accès à ce service d'IA générative public est bloqué sur ce poste : les données de l'organisation ne doivent pas en sortir.",
      "Access to this public generative-AI service is blocked on this workstation: the organisation's data must not leave through it.",
    ),
  },
  dns: { blocked_answer: "null", block_doh_resolvers: true, block_resolved_addresses: false },
  clipboard: {
    enabled: true,
    detectors: {
      families: ["secret", "personal-data", "marking", "source-code"],
      disabled: [],
      min_confidence: "medium",
      source_code_min_lines: 8,
      organisation: { pattern: [], dictionary: [] },
    },
    actions: { secret: "block", "personal-data": "warn", marking: "block", "source-code": "warn" },
    detector_actions: { nir: "block", "payment-card": "block" },
    services_except: [],
    recent_flow_seconds: 120,
    browser_recent_flow_seconds: 30,
    messages: {
      warn: txt(
        "Le presse-papiers contient des données sensibles et la fenêtre active est un service d'IA générative public. Ne les y collez pas : tout ce qui y est saisi sort de l'organisation.",
        "The clipboard holds sensitive data and the active window is a public generative-AI service. Do not paste it there: whatever is typed there leaves the organisation.",
      ),
      block: txt(
        "Le presse-papiers contenait des données sensibles alors qu'un service d'IA générative public est actif : Vigie l'a remplacé par un avertissement. Utilisez l'assistant interne pour ce contenu.",
        "The clipboard held sensitive data while a public generative-AI service was active: Vigie replaced it with a notice. Use the internal assistant for this content.",
      ),
    },
  },
  inventory: {
    enabled: true,
    rescan_seconds: 600,
    actions: { "browser-extension": "warn", "mcp-server": "warn", "local-server": "monitor" },
    message: txt(
      "Ce logiciel envoie ce que vous lui confiez à un service d'IA générative public. N'y mettez pas de données sensibles de l'entreprise ; utilisez l'alternative interne.",
      "This software sends what you give it to a public generative-AI service. Do not use it with the company's sensitive data; use the internal alternative.",
    ),
  },
  rules: [
    {
      id: "block-non-adequate-jurisdictions",
      action: "block",
      reason: txt(
        "Les données saisies sont hébergées hors de l'UE, sans garanties équivalentes au RGPD.",
        "What you type is hosted outside the EU without GDPR-equivalent safeguards.",
      ),
      services: [],
      categories: [],
      vendors: [],
      jurisdictions: ["CN", "RU"],
      jurisdictions_except: [],
      trains_on_inputs: null,
      users: [],
      groups: [],
      programs: [],
    },
    {
      id: "block-trains-on-inputs",
      action: "block",
      reason: txt(
        "Ce service réutilise par défaut ce que vous saisissez pour entraîner ses modèles.",
        "This service trains its models on what you type by default.",
      ),
      services: [],
      categories: ["chat", "writing", "search", "agent", "image", "audio-video"],
      vendors: [],
      jurisdictions: [],
      jurisdictions_except: [],
      trains_on_inputs: "yes",
      users: [],
      groups: [],
      programs: [],
    },
    {
      id: "coach-code-assistants",
      action: "coach",
      reason: txt("Un assistant de code envoie votre code source au fournisseur.", "A code assistant sends your source code to its vendor."),
      services: [],
      categories: ["code-assistant"],
      vendors: [],
      jurisdictions: [],
      jurisdictions_except: [],
      trains_on_inputs: null,
      users: [],
      groups: [],
      programs: [],
    },
    {
      id: "monitor-model-hubs",
      action: "monitor",
      reason: null,
      services: [],
      categories: ["model-hub"],
      vendors: [],
      jurisdictions: [],
      jurisdictions_except: [],
      trains_on_inputs: null,
      users: [],
      groups: [],
      programs: [],
    },
    {
      id: "warn-no-training",
      action: "warn",
      reason: txt(
        "Ce service n'entraîne pas ses modèles sur vos saisies, mais reste un service externe.",
        "This service does not train on your inputs, but it is still an external service.",
      ),
      services: [],
      categories: [],
      vendors: [],
      jurisdictions: [],
      jurisdictions_except: [],
      trains_on_inputs: "no",
      users: [],
      groups: [],
      programs: [],
    },
  ],
};

/** The action the sample policy gives a service. */
export function actionFor(s: Service): { action: Action; rule: string } {
  if (s.jurisdiction === "CN" || s.jurisdiction === "RU") return { action: "block", rule: "block-non-adequate-jurisdictions" };
  if (s.trains_on_inputs === "yes" && s.category !== "code-assistant" && s.category !== "model-hub" && s.category !== "api")
    return { action: "block", rule: "block-trains-on-inputs" };
  if (s.category === "code-assistant") return { action: "coach", rule: "coach-code-assistants" };
  if (s.category === "model-hub") return { action: "monitor", rule: "monitor-model-hubs" };
  if (s.trains_on_inputs === "no") return { action: "warn", rule: "warn-no-training" };
  return { action: "coach", rule: "default" };
}

export const USERS = ["alice", "bruno", "chloe", "david", "emma", "farid", "gaelle", "hugo"];
export const PROGRAMS = ["firefox", "chrome", "code", "curl", "python3", "slack"];

/** A fixed "now" for reproducible samples: 27 Nov 2026, 15:30 UTC. */
export const NOW_MICROS = Date.UTC(2026, 10, 27, 15, 30) * 1000;

function mix(n: number): number {
  let x = (n ^ 0x9e3779b9) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

const pick = <T,>(list: readonly T[], n: number): T => list[n % list.length]!;

/** The `index`-th newest sample event (deterministic), about 20 s apart. */
export function sampleEvent(index: number, now = NOW_MICROS, only?: { services?: string[]; users?: string[]; actions?: Action[] }): Event {
  const h = mix(index);
  let services = SERVICES;
  if (only?.services?.length) services = SERVICES.filter((s) => only.services!.includes(s.id));
  if (only?.actions?.length) {
    const f = services.filter((s) => only.actions!.includes(actionFor(s).action));
    if (f.length) services = f;
  }
  const s = pick(services.length ? services : SERVICES, h);
  const { action, rule } = actionFor(s);
  const user = only?.users?.length ? pick(only.users, h >>> 8) : pick(USERS, h >>> 8);
  const program = pick(PROGRAMS, h >>> 12);
  const uid = 1000 + USERS.indexOf(user);
  const repeats = h % 7 === 0 ? 1 + (h % 5) : 1;
  return {
    id: `0193a1b2-${index.toString(16).padStart(4, "0")}-7000-8000-${h.toString(16).padStart(12, "0")}`,
    ts: now - index * 20_000_000 - (h % 15_000_000),
    source: pick(["tls", "dns", "quic", "resolver"], h >>> 4),
    name: s.domains[0] ?? s.id,
    service_id: s.id,
    service_name: s.name,
    category: s.category,
    vendor: s.vendor,
    action,
    rule_id: rule,
    policy_version: POLICY.version,
    protocol: pick(["tcp", "udp"], h >>> 6),
    src: `10.0.${(h >>> 3) % 8}.${(h % 200) + 10}:${40000 + (h % 20000)}`,
    dst: `104.18.${(h >>> 5) % 255}.${(h >>> 9) % 255}:443`,
    ech: h % 11 === 0,
    repeats,
    pid: 2000 + (h % 30000),
    program,
    program_path: `/usr/bin/${program}`,
    uid,
    user,
  };
}

export function samplePrompt(id: number, action: "block" | "coach" | "warn", serviceId: string, repeats = 1): Prompt {
  const s = SERVICES.find((x) => x.id === serviceId) ?? SERVICES[0]!;
  const rule = POLICY.rules.find((r) => r.action === action);
  return {
    id,
    ts: NOW_MICROS - 60_000_000,
    uid: 1000,
    user: "alice",
    program: "firefox",
    service_id: s.id,
    service_name: s.name,
    vendor: s.vendor,
    category: s.category,
    name: s.domains[0] ?? s.id,
    action,
    rule_id: rule?.id ?? "default",
    reason: rule?.reason ?? null,
    message: POLICY.messages[action],
    alternative: POLICY.alternative,
    min_justification_chars: action === "coach" ? POLICY.coach.min_justification_chars : null,
    bypass_minutes: action === "coach" ? POLICY.coach.bypass_minutes : null,
    repeats,
    event_id: `evt-${id}`,
  };
}

export function sampleAnswers(now = NOW_MICROS): Answer[] {
  return [
    {
      ts: now - 30 * 60_000_000,
      uid: 1000,
      user: "alice",
      service_id: "github-copilot",
      action: "coach",
      event_id: "evt-a1",
      kind: "justified",
      text: "Revue d'un module open source public, aucune donnée interne.",
      bypass_until: now + 210 * 60_000_000,
    },
    {
      ts: now - 26 * 3_600_000_000,
      uid: 1000,
      user: "alice",
      service_id: "cursor",
      action: "coach",
      event_id: "evt-a2",
      kind: "justified",
      text: "Évaluation de l'outil demandée par l'équipe plateforme.",
      bypass_until: now - 22 * 3_600_000_000,
    },
    {
      ts: now - 3 * 24 * 3_600_000_000,
      uid: 1000,
      user: "alice",
      service_id: "deepseek",
      action: "block",
      event_id: "evt-a3",
      kind: "exception-requested",
      text: "Besoin de comparer les modèles pour un appel d'offres.",
      bypass_until: null,
    },
    {
      ts: now - 4 * 24 * 3_600_000_000,
      uid: 1000,
      user: "alice",
      service_id: "le-chat",
      action: "warn",
      event_id: "evt-a4",
      kind: "acknowledged",
      text: null,
      bypass_until: null,
    },
  ];
}

/** What the inventory finds on a developer's workstation, as the agent stores it. */
export function sampleInventory(now = NOW_MICROS): InventoryRow[] {
  const day = 86_400_000_000;
  const row = (
    uid: number | null,
    kind: InventoryRow["kind"],
    host: string,
    key: string,
    name: string,
    version: string | null,
    service_id: string | null,
    rights: string[],
    path: string,
    age_days: number,
    local = false,
    broad: string[] = [],
  ): InventoryRow => ({
    kind,
    host,
    key,
    name,
    version,
    uid,
    user: uid === null ? null : uid === 1000 ? "alice" : "bob",
    path,
    service_id,
    local,
    rights,
    first_seen: now - age_days * day,
    last_seen: now - 60_000_000,
    broad,
  });
  return [
    row(1000, "browser-extension", "google-chrome", "jgjaeacdkonaoafenlfkkkmbaopkbilf", "ChatGPT for Google", "1.16.1", "chatgpt",
      ["site:https://*.google.com/search*", "site:https://*.bing.com/search*", "storage"], "~/.config/google-chrome/Default/Extensions/jgjaeacdkonaoafenlfkkkmbaopkbilf/1.16.1_0", 41),
    row(1000, "browser-extension", "google-chrome", "difoiogjjojoaoomphldepapgpbgkhkb", "Sider: ChatGPT Sidebar", "4.10.0", "sider",
      ["all-sites", "clipboard-read", "clipboard-write", "context-menus", "side-panel", "storage", "tabs"], "~/.config/google-chrome/Default/Extensions/difoiogjjojoaoomphldepapgpbgkhkb/4.10.0_0", 3, false, ["all-sites", "clipboard-read"]),
    row(1000, "browser-extension", "firefox", "{b764208e-0a98-436d-a599-c1baa044f829}", "ChatGPTBox", "2.5.9", null,
      ["all-sites", "clipboard-write", "context-menus", "storage", "tabs", "unlimited-storage"], "~/.mozilla/firefox/owclmdyt.default-release", 12, false, ["all-sites"]),
    row(1000, "editor-extension", "vscode", "saoudrizwan.claude-dev", "Cline", "3.37.1", "cline",
      ["agent-mode", "auto-approve:all-tools", "auto-run:npm test", "workspace-trust-off"], "~/.vscode/extensions/saoudrizwan.claude-dev-3.37.1", 20, false, ["auto-approve:all-tools", "auto-run:npm test", "workspace-trust-off"]),
    row(1000, "editor-extension", "vscode", "github.copilot-chat", "GitHub Copilot Chat", "0.32.4", "github-copilot", ["agent-mode"], "~/.vscode/extensions/github.copilot-chat-0.32.4", 90),
    row(1000, "jetbrains-plugin", "IntelliJIdea2025.2", "com.github.continuedev.continueintellijextension", "Continue", "1.0.52", "continue", [], "~/.local/share/JetBrains/IntelliJIdea2025.2/continue-intellij-extension", 7),
    row(1000, "cli-agent", "claude-code", "claude-code", "Claude Code", null, "anthropic-api",
      ["allow:Bash(git diff *)", "auto-approve:edits", "folder:../docs/"], "~/.claude", 5, false, ["auto-approve:edits"]),
    row(1000, "mcp-server", "claude-code", "postgres@~/src/payroll", "postgres", null, "anthropic-api",
      ["command:npx", "env:PGPASSWORD", "package:@modelcontextprotocol/server-postgres"], "~/.claude.json", 5),
    row(1000, "mcp-server", "claude-desktop", "filesystem", "filesystem", null, "claude",
      ["command:npx", "package:@modelcontextprotocol/server-filesystem", "path:~/Documents", "path:~/Downloads"], "~/.config/Claude/claude_desktop_config.json", 30),
    row(1000, "desktop-app", "user", "cursor", "Cursor", null, "cursor", [], "~/.local/share/applications/cursor.desktop", 60),
    row(1000, "program", "process", "ollama", "Ollama", null, "ollama", [], "/usr/local/bin/ollama", 2, true),
    row(1000, "local-server", "ollama", "127.0.0.1:11434", "Ollama", "0.12.6", "ollama", ["api:ollama", "model:llama3.2:3b", "model:mistral:7b"], "/usr/local/bin/ollama", 2, true),
    row(1001, "browser-extension", "microsoft-edge", "ofpnmcalabcbjgholdjcjblkibolbppb", "Monica", "7.5.1", "monica",
      ["all-sites", "clipboard-read", "cookies", "storage", "tabs"], "~/.config/microsoft-edge/Default/Extensions/ofpnmcalabcbjgholdjcjblkibolbppb/7.5.1_0", 1, false, ["all-sites", "clipboard-read", "cookies"]),
    row(null, "desktop-app", "system", "lm-studio", "LM Studio", null, "lm-studio", [], "/usr/share/applications/lm-studio.desktop", 15, true),
  ];
}

/** The collector's view of a small fleet, for the fleet view (dev and tests). */
export function sampleFleet(nowMs: number): { overview: FleetOverview; finds: FleetFind[]; exceptions: FleetException[] } {
  const iso = (minutesAgo: number) => new Date(nowMs - minutesAgo * 60_000).toISOString();
  const agent = (id: number, hostname: string, group: string, minutesAgo: number | null, mode = "enforce"): FleetAgent => ({
    id: `0190${id.toString().padStart(4, "0")}-0000-7000-8000-000000000000`,
    group,
    hostname,
    last_seen: minutesAgo === null ? null : iso(minutesAgo),
    revoked_at: null,
    version: "0.1.0",
    mode,
    bundle_version: 12,
  });
  const find = (n: number, hostname: string, user: string, kind: string, name: string, broad: string[], decided: FleetDecision[] = []): FleetFind => ({
    find: `f${n.toString(16).padStart(15, "0")}`,
    hostname,
    group: "compta",
    user,
    kind,
    key: name.toLowerCase(),
    name,
    version: "1.0",
    service_id: null,
    local: false,
    rights: [...broad, "storage"],
    broad,
    pending: broad.filter((r) => !decided.some((d) => d.right === r)),
    decisions: decided,
  });
  return {
    overview: {
      agents: [
        agent(1, "pc-compta-01", "compta", 2),
        agent(2, "pc-compta-02", "compta", 7),
        agent(3, "pc-rh-01", "rh", 95, "monitor"),
        agent(4, "pc-dsi-07", "dsi", null),
      ],
      exports: [
        { destination: "soc-syslog", exported: 182_344, waiting: 0, oldest_waiting: null, last_success: iso(1), last_error: null },
        { destination: "elastic", exported: 180_120, waiting: 2_224, oldest_waiting: iso(42), last_success: iso(44), last_error: "503 Service Unavailable" },
      ],
    },
    finds: [
      find(1, "pc-compta-01", "p-3f9a1c2b7d4e5f60", "browser-extension", "Sider", ["all-sites", "clipboard-read"]),
      find(2, "pc-compta-02", "p-8b2e4d6f1a3c5e79", "editor-extension", "Cline", ["auto-approve:all-tools"], [
        { right: "auto-approve:all-tools", decision: "keep", by: "rssi@example.org", at: iso(60 * 24), note: "" },
      ]),
      find(3, "pc-rh-01", "p-1d2c3b4a59687766", "local-server", "Ollama", ["listen:network"]),
      find(4, "pc-dsi-07", "p-5e6f7a8b9c0d1e2f", "editor-extension", "Continue", []),
    ],
    exceptions: [
      {
        request: "a1b2c3d4e5f60718",
        at: iso(35),
        hostname: "pc-compta-01",
        group: "compta",
        user: "p-3f9a1c2b7d4e5f60",
        service_id: "deepseek",
        action: "block",
        text: "Traduire un communiqué de presse déjà publié.",
        decision: null,
      },
      {
        request: "0f1e2d3c4b5a6978",
        at: iso(60 * 26),
        hostname: "pc-rh-01",
        group: "rh",
        user: "p-1d2c3b4a59687766",
        service_id: "chatgpt",
        action: "block",
        text: "Reformuler une offre d'emploi.",
        decision: { decision: "refuse", by: "rssi@example.org", at: iso(60 * 20), note: "Utiliser l'assistant interne" },
      },
    ],
  };
}

/** What the collector's `?filter=` keeps (the mock and the tests answer with it). */
export function filterFinds(finds: FleetFind[], filter: unknown): FleetFind[] {
  if (filter === "pending") return finds.filter((f) => f.pending.length > 0);
  if (filter === "broad") return finds.filter((f) => f.broad.length > 0);
  return finds;
}
