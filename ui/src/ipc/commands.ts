// The only module that talks to the Tauri side (`@tauri-apps/api`): every
// view goes through these functions, so tests mock one place.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

import type { Answer } from "./gen/Answer";
import type { AnswerParams } from "./gen/AnswerParams";
import type { Answered } from "./gen/Answered";
import type { CatalogView } from "./gen/CatalogView";
import type { CommandError } from "./gen/CommandError";
import type { ConnectionStatus } from "./gen/ConnectionStatus";
import type { EventPage } from "./gen/EventPage";
import type { EventQuery } from "./gen/EventQuery";
import type { EventStats } from "./gen/EventStats";
import type { ExportFormat } from "./gen/ExportFormat";
import type { ExportResult } from "./gen/ExportResult";
import type { Facets } from "./gen/Facets";
import type { FleetDecision } from "./gen/FleetDecision";
import type { FleetException } from "./gen/FleetException";
import type { FleetExceptionDecision } from "./gen/FleetExceptionDecision";
import type { FleetFind } from "./gen/FleetFind";
import type { FleetOverview } from "./gen/FleetOverview";
import type { FleetStatus } from "./gen/FleetStatus";
import type { ReportResult } from "./gen/ReportResult";
import type { InventoryRow } from "./gen/InventoryRow";
import type { PolicyView } from "./gen/PolicyView";
import type { Prompt } from "./gen/Prompt";

/** Events the Rust side emits. */
export const CONNECTION_EVENT = "vigie://connection";
export const PROMPTS_EVENT = "vigie://prompts";
/** New events or answers of this user were recorded (payload: the time, µs since the epoch). */
export const ACTIVITY_EVENT = "vigie://activity";

/** Rejections of every command are a `CommandError` ({kind, message}). */
export function isCommandError(e: unknown): e is CommandError {
  return typeof e === "object" && e !== null && "kind" in e && "message" in e;
}

export const connectionStatus = () => invoke<ConnectionStatus>("connection_status");
export const pendingPrompts = () => invoke<Prompt[]>("pending_prompts");
export const answerPrompt = (answer: AnswerParams) => invoke<Answered>("answer_prompt", { answer });
export const dismissPrompt = (id: number) => invoke<void>("dismiss_prompt", { id });
export const myEvents = (offset: number, limit: number) => invoke<EventPage>("my_events", { offset, limit });
export const myAnswers = () => invoke<Answer[]>("my_answers");
export const policy = () => invoke<PolicyView>("policy");
export const catalog = () => invoke<CatalogView>("catalog");
/** The AI software found: mine, or with `everyone` every user's (the security team's). */
export const inventory = (everyone: boolean) => invoke<InventoryRow[]>("inventory", { everyone });
export const searchEvents = (query: EventQuery) => invoke<EventPage>("search_events", { query });
export const eventStats = (query: EventQuery) => invoke<EventStats>("event_stats", { query });
export const facets = () => invoke<Facets>("facets");
/**
 * Writes every event matching `query` to a file and says where. The console
 * sends the table's query with `offset: 0, limit: 0`: the export is not paged.
 */
export const exportEvents = (query: EventQuery, format: ExportFormat) =>
  invoke<ExportResult>("export_events", { query, format });
export const openConsole = (view: string) => invoke<void>("open_console", { view });
/** Opens the prompt's internal alternative (its `alternative.url`) in the user's browser. */
export const openAlternative = (id: number) => invoke<void>("open_alternative", { id });

/**
 * The main window shows its first data: the Rust side records the time
 * since process start (the cold-start figure) and returns it in ms.
 */
/** "fr" or "en", from the session's locale settings (French unless they say otherwise). */
export const sessionLocale = () => invoke<string>("session_locale");

/** The fleet view (the collector, with the administrator's own certificate). */
export const fleetStatus = () => invoke<FleetStatus>("fleet_status");
export const fleetOverview = () => invoke<FleetOverview>("fleet_overview");
export const fleetInventory = (filter: "all" | "broad" | "pending") => invoke<FleetFind[]>("fleet_inventory", { filter });
export const fleetRecertify = (find: string, right: string, decision: "keep" | "remove", note: string) =>
  invoke<FleetDecision>("fleet_recertify", { find, right, decision, note });
export const fleetExceptions = (filter: "pending" | "all") => invoke<FleetException[]>("fleet_exceptions", { filter });
export const fleetDecideException = (request: string, decision: "grant" | "refuse", note: string) =>
  invoke<FleetExceptionDecision>("fleet_decide_exception", { request, decision, note });
/** The periodic review (`from`/`to`: YYYY-MM-DD), written to the download folder. */
export const fleetReport = (from: string, to: string, lang: string) => invoke<ReportResult>("fleet_report", { from, to, lang });
export const uiReady = () => invoke<number | null>("ui_ready");

export const onConnection = (handler: (status: ConnectionStatus) => void): Promise<UnlistenFn> =>
  listen<ConnectionStatus>(CONNECTION_EVENT, (e) => handler(e.payload));
export const onPrompts = (handler: (prompts: Prompt[]) => void): Promise<UnlistenFn> =>
  listen<Prompt[]>(PROMPTS_EVENT, (e) => handler(e.payload));
export const onActivity = (handler: (ts: number) => void): Promise<UnlistenFn> =>
  listen<number>(ACTIVITY_EVENT, (e) => handler(e.payload));
