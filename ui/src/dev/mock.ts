// Development only (vite dev, or a build with VITE_VIGIE_MOCK=1): the IPC
// answered with sample data, so the console can be looked at in a browser.
// URL switches: ?role=user (not admin: security views are refused),
// ?agent=down (not connected), ?prompts=0 (no pending prompt), ?reload=bad
// (a rejected policy file), ?theme=dark, ?lang=en.
import { CONNECTION_EVENT, PROMPTS_EVENT } from "../ipc/commands";
import type { AnswerParams } from "../ipc/gen/AnswerParams";
import type { EventQuery } from "../ipc/gen/EventQuery";
import type { EventStats } from "../ipc/gen/EventStats";
import type { Facets } from "../ipc/gen/Facets";
import type { Prompt } from "../ipc/gen/Prompt";
import { commandError, emitEvent, installMock } from "../ipc/testing";
import { CATALOG, POLICY, PROGRAMS, SERVICES, USERS, sampleAnswers, sampleEvent, sampleFleet, filterFinds, sampleInventory, samplePrompt } from "./fixtures";

export function installDevMock(): void {
  const params = new URLSearchParams(location.search);
  const admin = params.get("role") !== "user";
  const down = params.get("agent") === "down";
  const now = Date.now() * 1000;
  // ?theme=dark|light and ?lang=fr|en preset the header's choices.
  for (const [param, key] of [["theme", "vigie.theme"], ["lang", "vigie.locale"]] as const) {
    const v = params.get(param);
    if (v) localStorage.setItem(key, v);
  }
  let prompts: Prompt[] =
    params.get("prompts") === "0"
      ? []
      : [samplePrompt(1, "coach", "claude", 3), samplePrompt(2, "block", "deepseek"), samplePrompt(3, "warn", "le-chat")].map(
          (p) => ({ ...p, ts: now - 60_000_000 }),
        );
  const first = params.get("first"); // ?first=block|warn: that prompt first
  if (first) prompts = [...prompts.filter((p) => p.action === first), ...prompts.filter((p) => p.action !== first)];
  const status = () => ({
    connected: !down,
    socket: "/run/vigie/agent.sock",
    hello: down ? null : { protocol: 1, agent: "vigie-agent 0.1.0", uid: 1000, user: "alice", admin },
    error: down ? "connect /run/vigie/agent.sock: No such file or directory (os error 2)" : null,
  });
  const needAdmin = () => {
    if (down) throw commandError("not-connected", "agent socket unreachable");
    if (!admin) throw commandError("forbidden", "this needs the vigie-admin group");
  };
  const totalFor = (q: EventQuery) => {
    let total = 1_000_000;
    const narrow = (n: number, of: number) => (n > 0 ? Math.max(1, Math.round((total * n) / of)) : total);
    total = narrow(q.services.length, SERVICES.length);
    total = narrow(q.users.length, USERS.length);
    total = narrow(q.programs.length, PROGRAMS.length);
    total = narrow(q.actions.length, 5);
    if (q.text) total = Math.round(total / 37);
    if (q.from !== undefined) total = Math.min(total, Math.round((now - q.from) / 20_000_000));
    return Math.max(0, total);
  };

  installMock(async (cmd, args) => {
    await new Promise((r) => setTimeout(r, 20 + Math.random() * 60));
    switch (cmd) {
      case "connection_status":
        return status();
      // ?fleet=off: the fleet view not set up.
      case "fleet_status":
        return {
          collector: params.get("fleet") === "off" ? null : "https://collector.example.org:8443",
          ca: "/etc/vigie/fleet-ca.pem",
          identity: "/home/alice/.config/vigie/admin.pem",
          ready: params.get("fleet") !== "off",
        };
      case "fleet_overview":
        return sampleFleet(Date.now()).overview;
      case "fleet_inventory": {
        return filterFinds(sampleFleet(Date.now()).finds, args.filter);
      }
      case "fleet_exceptions": {
        const requests = sampleFleet(Date.now()).exceptions;
        return args.filter === "pending" ? requests.filter((r) => r.decision === null) : requests;
      }
      case "fleet_decide_exception":
        return { decision: args.decision, by: "alice", at: new Date().toISOString(), note: args.note };
      case "fleet_recertify":
        return { right: args.right, decision: args.decision, by: "alice", at: new Date().toISOString(), note: args.note };
      case "fleet_report":
        return { path: `/home/alice/Téléchargements/vigie-revue-${String(args.from)}-${String(args.to)}.html`, bytes: 48_213 };
      case "pending_prompts":
        if (down) throw commandError("not-connected", "agent socket unreachable");
        return prompts;
      case "answer_prompt": {
        const a = args.answer as AnswerParams;
        const p = prompts.find((x) => x.id === a.prompt);
        if (!p) throw commandError("bad-request", "no such prompt");
        if (p.action === "coach" && (a.justification ?? "").length < (p.min_justification_chars ?? 0))
          throw commandError("bad-request", "justification too short");
        prompts = prompts.filter((x) => x.id !== a.prompt);
        setTimeout(() => void emitEvent(PROMPTS_EVENT, prompts), 50);
        const kind = a.justification ? "justified" : a.exception ? "exception-requested" : "acknowledged";
        return {
          prompt: p,
          kind,
          text: a.justification ?? a.exception ?? null,
          bypass_until: kind === "justified" ? Date.now() * 1000 + (p.bypass_minutes ?? 0) * 60_000_000 : null,
        };
      }
      case "dismiss_prompt":
        prompts = prompts.filter((x) => x.id !== args.id);
        setTimeout(() => void emitEvent(PROMPTS_EVENT, prompts), 50);
        return null;
      case "open_alternative":
      case "open_console":
        return null;
      case "my_events": {
        if (down) throw commandError("not-connected", "agent socket unreachable");
        const offset = args.offset as number;
        const limit = args.limit as number;
        const total = 137;
        const events = [];
        for (let i = offset; i < Math.min(total, offset + limit); i++) events.push(sampleEvent(i * 97, now, { users: ["alice"] }));
        return { total, offset, events };
      }
      case "my_answers":
        if (down) throw commandError("not-connected", "agent socket unreachable");
        return sampleAnswers(now);
      case "policy":
        if (down) throw commandError("not-connected", "agent socket unreachable");
        return {
          policy: POLICY,
          reload_error:
            params.get("reload") === "bad"
              ? 'policies/default.toml:42:11: unknown field `actoin`, expected one of `id`, `action`, `reason`, …\n   |\n42 | actoin = "block"\n   |           ^^^^^^^'
              : null,
        };
      case "catalog":
        return CATALOG;
      case "inventory": {
        if (args.everyone) needAdmin();
        const rows = sampleInventory(now);
        return args.everyone ? rows : rows.filter((r) => r.uid === 1000);
      }
      case "facets": {
        needAdmin();
        const f: Facets = {
          services: SERVICES.map((s) => ({ value: s.id, label: s.name })),
          categories: [...new Set(SERVICES.map((s) => s.category))].map((c) => ({ value: c, label: c })),
          users: USERS.map((u) => ({ value: u, label: u })),
          programs: PROGRAMS.map((p) => ({ value: p, label: p })),
          rules: POLICY.rules.map((r) => ({ value: r.id, label: r.id })),
        };
        return f;
      }
      case "search_events": {
        needAdmin();
        const q = args.query as EventQuery;
        const total = totalFor(q);
        const events = [];
        for (let i = q.offset; i < Math.min(total, q.offset + q.limit); i++) {
          events.push(sampleEvent(i, now, { services: q.services, users: q.users, actions: q.actions }));
        }
        return { total, offset: q.offset, events };
      }
      case "event_stats": {
        needAdmin();
        const q = args.query as EventQuery;
        const hour = 3_600_000_000;
        const from = q.from ?? now - 30 * 24 * hour;
        const span = now - from;
        const bucket = span <= 2 * hour ? 5 * 60_000_000 : span <= 2 * 24 * hour ? hour : span <= 8 * 24 * hour ? 6 * hour : 24 * hour;
        const timeline = [];
        for (let t = Math.floor(from / bucket) * bucket, i = 0; t < now; t += bucket, i++) {
          const d = new Date(t / 1000);
          const work = d.getDay() % 6 !== 0 && d.getHours() >= 8 && d.getHours() <= 19 ? 1 : 0.25;
          const base = Math.round((bucket / hour) * 40 * work * (0.7 + ((i * 37) % 11) / 18));
          timeline.push({
            start: t,
            allow: Math.round(base * 0.15),
            monitor: Math.round(base * 0.25),
            warn: Math.round(base * 0.3),
            coach: Math.round(base * 0.12),
            block: Math.round(base * 0.18),
          });
        }
        const total = totalFor(q);
        const ranked = (keys: string[], label: (k: string) => string) =>
          keys.map((k, i) => ({ key: k, label: label(k), count: Math.round(total / (i + 2) ** 1.2) })).slice(0, 8);
        const stats: EventStats = {
          total,
          bucket_micros: bucket,
          timeline,
          top_services: ranked(
            SERVICES.map((s) => s.id),
            (k) => SERVICES.find((s) => s.id === k)?.name ?? k,
          ),
          top_users: ranked(USERS, (u) => u),
          top_programs: ranked(PROGRAMS, (p) => p),
          justifications: sampleAnswers(now).filter((a) => a.kind !== "acknowledged"),
        };
        return stats;
      }
      case "export_events": {
        needAdmin();
        const q = args.query as EventQuery;
        return { path: `/home/alice/Téléchargements/vigie-events.${args.format as string}`, count: totalFor(q) };
      }
      default:
        throw commandError("internal", `unknown command ${cmd}`);
    }
  });
  // The Rust side pushes the connection state when it changes.
  setTimeout(() => void emitEvent(CONNECTION_EVENT, status()), 300);
}
