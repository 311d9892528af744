import { fireEvent, screen, waitFor } from "@testing-library/preact";
import { describe, expect, it } from "vitest";

import { sampleEvent } from "../dev/fixtures";
import type { EventQuery } from "../ipc/gen/EventQuery";
import { commandError, installMock } from "../ipc/testing";
import { buildQuery, DEFAULT_FILTERS } from "../lib/query";
import { MAX_SCROLL_HEIGHT } from "../lib/virtual";
import { renderIn, type Calls } from "../test/render";
import { EventsView } from "./events";

const QUERY = buildQuery(DEFAULT_FILTERS, Date.UTC(2026, 10, 27), 0, 0);

function mockMillion(total = 1_000_000) {
  const calls: Calls = [];
  installMock(async (cmd, args) => {
    calls.push({ cmd, args });
    if (cmd === "search_events") {
      const q = args.query as EventQuery;
      const events = [];
      for (let i = q.offset; i < Math.min(total, q.offset + q.limit); i++) events.push(sampleEvent(i));
      return { total, offset: q.offset, events };
    }
    if (cmd === "export_events") return { path: "/home/alice/vigie-events.csv", count: total };
    throw commandError("internal", cmd);
  });
  return calls;
}

const searches = (calls: Calls) => calls.filter((c) => c.cmd === "search_events").map((c) => c.args.query as EventQuery);

describe("events table", () => {
  it("renders only a window of rows out of 1,000,000, fetched by page", async () => {
    const calls = mockMillion();
    renderIn(<EventsView query={QUERY} />);
    await waitFor(() => expect(screen.getByTestId("events-total").textContent).toMatch(/^1\s000\s000 événements$/u));
    expect(screen.getByTestId("events-query-ms").textContent).toMatch(/^requête : [\d,]+ ms$/);
    const rows = await screen.findAllByTestId("events-row");
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.length).toBeLessThan(60);
    expect(rows[0]!.textContent).toContain(sampleEvent(0).service_name);
    // Total height is capped, not 32 px × 1,000,000.
    const body = screen.getByTestId("events-table").querySelector<HTMLElement>(".vt-body")!;
    expect(body.style.height).toBe(`${MAX_SCROLL_HEIGHT}px`);
    expect(screen.getByTestId("events-table").getAttribute("aria-rowcount")).toBe("1000001");
    expect(searches(calls).map((q) => [q.offset, q.limit])).toEqual([[0, 200]]);
  });

  it("fetches the page under the scroll position, once", async () => {
    const calls = mockMillion();
    renderIn(<EventsView query={QUERY} />);
    await screen.findAllByTestId("events-row");
    const table = screen.getByTestId("events-table");
    // Half-way down the scaled scroll bar: around row 500,000.
    table.scrollTop = (MAX_SCROLL_HEIGHT - 600) / 2;
    fireEvent.scroll(table);
    await waitFor(() => expect(screen.getAllByTestId("events-row")[0]!.getAttribute("aria-rowindex")).not.toBe("2"));
    await waitFor(() => expect(searches(calls).some((q) => q.offset === 499_800 || q.offset === 500_000)).toBe(true));
    const first = Number(screen.getAllByTestId("events-row")[0]!.getAttribute("aria-rowindex")) - 2;
    await waitFor(() => expect(screen.getAllByTestId("events-row")[0]!.textContent).toContain(sampleEvent(first).name));
    const offsets = searches(calls).map((q) => q.offset);
    expect(new Set(offsets).size).toBe(offsets.length); // no page asked twice
    expect(screen.getAllByTestId("events-row").length).toBeLessThan(60);
  });

  it("opens an event's details from a row, closes them with Escape", async () => {
    mockMillion(3);
    renderIn(<EventsView query={QUERY} />);
    const rows = await screen.findAllByTestId("events-row");
    await waitFor(() => expect(rows[1]!.textContent).not.toContain("Chargement"));
    fireEvent.click(screen.getAllByTestId("events-row")[1]!);
    const panel = await screen.findByRole("complementary");
    expect(panel.textContent).toContain(sampleEvent(1).id);
    expect(panel.textContent).toContain(sampleEvent(1).program_path!);
    fireEvent.keyDown(panel, { key: "Escape" });
    await waitFor(() => expect(screen.queryByRole("complementary")).toBeNull());
  });

  it("moves through rows with the keyboard and opens one with Enter", async () => {
    mockMillion();
    renderIn(<EventsView query={QUERY} />);
    await waitFor(() => expect(screen.getAllByTestId("events-row")[0]!.textContent).not.toContain("Chargement"));
    const table = screen.getByTestId("events-table");
    table.focus();
    fireEvent.keyDown(table, { key: "ArrowDown" });
    fireEvent.keyDown(table, { key: "ArrowDown" });
    await waitFor(() => expect(table.getAttribute("aria-activedescendant")).toMatch(/-r1$/));
    fireEvent.keyDown(table, { key: "Enter" });
    expect((await screen.findByRole("complementary")).textContent).toContain(sampleEvent(1).id);
    // End jumps to the last of the million rows, fetching its page.
    fireEvent.keyDown(table, { key: "End" });
    await waitFor(() => expect(table.getAttribute("aria-activedescendant")).toMatch(/-r999999$/));
  });

  it("exports the selection", async () => {
    const calls = mockMillion(12);
    renderIn(<EventsView query={QUERY} />);
    await screen.findAllByTestId("events-row");
    fireEvent.click(screen.getByTestId("export-csv"));
    await waitFor(() =>
      expect(screen.getByTestId("export-result").textContent).toBe("12 événements exportés vers /home/alice/vigie-events.csv"),
    );
    const exp = calls.find((c) => c.cmd === "export_events")!;
    expect(exp.args.format).toBe("csv");
    expect(exp.args.query).toEqual({ ...QUERY, offset: 0, limit: 0 });
  });

  it("shows the forbidden panel when the agent refuses", async () => {
    installMock(async () => {
      throw commandError("forbidden", "admin only");
    });
    renderIn(<EventsView query={QUERY} />);
    expect((await screen.findByTestId("forbidden-panel")).textContent).toContain("Accès réservé à l'équipe sécurité");
    expect(screen.queryByTestId("events-table")).toBeNull();
  });

  it("drops the answer to a superseded query", async () => {
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    installMock(async (cmd, args) => {
      const q = args.query as EventQuery;
      if (cmd !== "search_events") throw commandError("internal", cmd);
      if (q.text === "old") {
        await slow;
        return { total: 999, offset: 0, events: [sampleEvent(0)] };
      }
      return { total: 2, offset: 0, events: [sampleEvent(0), sampleEvent(1)] };
    });
    const view = renderIn(<EventsView query={{ ...QUERY, text: "old" }} />);
    view.rerender(<EventsView query={{ ...QUERY, text: "new" }} />);
    await waitFor(() => expect(screen.getByTestId("events-total").textContent).toBe("2 événements"));
    release();
    await new Promise((r) => setTimeout(r, 20));
    expect(screen.getByTestId("events-total").textContent).toBe("2 événements");
  });
});
