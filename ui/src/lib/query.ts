// The security views' filter state, and the EventQuery it stands for.
import type { Action } from "../ipc/gen/Action";
import type { EventQuery } from "../ipc/gen/EventQuery";
import { resolveRange, type TimeRange } from "./time";

export const ACTIONS: readonly Action[] = ["allow", "monitor", "warn", "coach", "block"];

export interface Filters {
  range: TimeRange;
  services: string[];
  categories: string[];
  users: string[];
  programs: string[];
  actions: Action[];
  rules: string[];
  text: string;
}

export const DEFAULT_FILTERS: Filters = {
  range: { preset: "7d", from: "", to: "" },
  services: [],
  categories: [],
  users: [],
  programs: [],
  actions: [],
  rules: [],
  text: "",
};

/** The rows of the events table are fetched this many at a time. */
export const PAGE_SIZE = 200;

/**
 * The EventQuery for `filters` at `nowMs` (relative presets resolve against it),
 * asking for `limit` rows from `offset`. Empty values are left out; lists are copied
 * and sorted so that equal selections give equal queries (and cache keys).
 */
export function buildQuery(filters: Filters, nowMs: number, offset = 0, limit = PAGE_SIZE): EventQuery {
  const q: EventQuery = {
    services: [...filters.services].sort(),
    categories: [...filters.categories].sort(),
    users: [...filters.users].sort(),
    programs: [...filters.programs].sort(),
    actions: ACTIONS.filter((a) => filters.actions.includes(a)),
    rules: [...filters.rules].sort(),
    offset,
    limit,
  };
  const { from, to } = resolveRange(filters.range, nowMs);
  if (from !== undefined) q.from = from;
  if (to !== undefined) q.to = to;
  const text = filters.text.trim();
  if (text) q.text = text;
  return q;
}

/** Identifies a selection regardless of paging: the page cache key prefix. */
export function selectionKey(q: EventQuery): string {
  const { offset: _o, limit: _l, ...rest } = q;
  return JSON.stringify(rest, Object.keys(rest).sort());
}

/** How many filters narrow the selection (time range aside). */
export function activeFilterCount(f: Filters): number {
  return (
    f.services.length + f.categories.length + f.users.length + f.programs.length + f.actions.length + f.rules.length +
    (f.text.trim() ? 1 : 0)
  );
}
