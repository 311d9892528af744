import { describe, expect, it } from "vitest";

import { DEFAULT_FILTERS, activeFilterCount, buildQuery, selectionKey, type Filters } from "./query";
import { parseLocalDateTime, resolveRange, toLocalDateTime } from "./time";

const NOW = Date.UTC(2026, 10, 27, 12, 0); // ms

describe("buildQuery", () => {
  it("selects everything in the preset's range by default", () => {
    const q = buildQuery(DEFAULT_FILTERS, NOW);
    expect(q).toEqual({
      services: [],
      categories: [],
      users: [],
      programs: [],
      actions: [],
      rules: [],
      offset: 0,
      limit: 200,
      from: (NOW - 7 * 24 * 3_600_000) * 1000,
    });
    expect("to" in q).toBe(false);
    expect("text" in q).toBe(false);
  });

  it("carries every filter, sorted, with trimmed text and paging", () => {
    const f: Filters = {
      ...DEFAULT_FILTERS,
      range: { preset: "all", from: "", to: "" },
      services: ["claude", "chatgpt"],
      users: ["bob", "alice"],
      actions: ["block", "warn"],
      rules: ["r2", "r1"],
      text: "  gpt ",
    };
    const q = buildQuery(f, NOW, 400, 200);
    expect(q.services).toEqual(["chatgpt", "claude"]);
    expect(q.users).toEqual(["alice", "bob"]);
    expect(q.actions).toEqual(["warn", "block"]); // the order of ACTIONS
    expect(q.rules).toEqual(["r1", "r2"]);
    expect(q.text).toBe("gpt");
    expect([q.offset, q.limit]).toEqual([400, 200]);
    expect(q.from).toBeUndefined();
  });

  it("uses a custom range in local time, either bound open", () => {
    const f: Filters = { ...DEFAULT_FILTERS, range: { preset: "custom", from: "2026-11-01T08:30", to: "" } };
    const q = buildQuery(f, NOW);
    expect(q.from).toBe(new Date(2026, 10, 1, 8, 30).getTime() * 1000);
    expect(q.to).toBeUndefined();
  });

  it("gives the same key to equal selections, whatever the paging or list order", () => {
    const a = buildQuery({ ...DEFAULT_FILTERS, services: ["b", "a"] }, NOW, 0, 200);
    const b = buildQuery({ ...DEFAULT_FILTERS, services: ["a", "b"] }, NOW, 800, 10);
    const c = buildQuery({ ...DEFAULT_FILTERS, services: ["a"] }, NOW);
    expect(selectionKey(a)).toBe(selectionKey(b));
    expect(selectionKey(a)).not.toBe(selectionKey(c));
  });

  it("counts the active filters", () => {
    expect(activeFilterCount(DEFAULT_FILTERS)).toBe(0);
    expect(activeFilterCount({ ...DEFAULT_FILTERS, services: ["a", "b"], text: "x" })).toBe(3);
  });
});

describe("time presets", () => {
  it("resolves each preset against now", () => {
    const h = 3_600_000;
    expect(resolveRange({ preset: "1h", from: "", to: "" }, NOW)).toEqual({ from: (NOW - h) * 1000 });
    expect(resolveRange({ preset: "24h", from: "", to: "" }, NOW)).toEqual({ from: (NOW - 24 * h) * 1000 });
    expect(resolveRange({ preset: "7d", from: "", to: "" }, NOW)).toEqual({ from: (NOW - 168 * h) * 1000 });
    expect(resolveRange({ preset: "30d", from: "", to: "" }, NOW)).toEqual({ from: (NOW - 720 * h) * 1000 });
    expect(resolveRange({ preset: "all", from: "x", to: "y" }, NOW)).toEqual({});
  });

  it("parses datetime-local values and rejects bad ones", () => {
    expect(parseLocalDateTime("2026-02-03T04:05")).toBe(new Date(2026, 1, 3, 4, 5).getTime() * 1000);
    expect(parseLocalDateTime("2026-02-03T04:05:06")).toBe(new Date(2026, 1, 3, 4, 5, 6).getTime() * 1000);
    expect(parseLocalDateTime("")).toBeUndefined();
    expect(parseLocalDateTime("2026-02-30T00:00")).toBeUndefined();
    expect(parseLocalDateTime("yesterday")).toBeUndefined();
  });

  it("formats local time for the inputs", () => {
    const ms = new Date(2026, 0, 9, 7, 3).getTime();
    expect(toLocalDateTime(ms)).toBe("2026-01-09T07:03");
    expect(parseLocalDateTime(toLocalDateTime(ms))).toBe(ms * 1000);
  });
});
