import { fireEvent, screen, waitFor } from "@testing-library/preact";
import { describe, expect, it, vi } from "vitest";

import { SECURITY_PANELS } from "../app";
import { CATALOG, POLICY, sampleAnswers, SERVICES } from "../dev/fixtures";
import type { EventQuery } from "../ipc/gen/EventQuery";
import type { EventStats } from "../ipc/gen/EventStats";
import { commandError, installMock } from "../ipc/testing";
import { renderIn, type Calls } from "../test/render";
import { SecurityView } from "./security";

// uPlot draws on a canvas, which jsdom does not have.
vi.mock("uplot", () => {
  class FakePlot {
    static paths = { bars: () => () => null };
    constructor(_o: unknown, _d: unknown, el: HTMLElement) {
      el.appendChild(document.createElement("canvas"));
    }
    setSize() {}
    destroy() {}
  }
  return { default: FakePlot };
});

const STATS: EventStats = {
  total: 1234,
  bucket_micros: 3_600_000_000,
  timeline: [
    { start: Date.UTC(2026, 10, 27, 10) * 1000, allow: 1, monitor: 2, warn: 3, coach: 4, block: 5 },
    { start: Date.UTC(2026, 10, 27, 11) * 1000, allow: 0, monitor: 1, warn: 0, coach: 0, block: 9 },
  ],
  top_services: [
    { key: "chatgpt", label: "ChatGPT", count: 800 },
    { key: "claude", label: "Claude", count: 400 },
  ],
  top_users: [{ key: "alice", label: "alice", count: 1000 }],
  top_programs: [{ key: "firefox", label: "firefox", count: 1200 }],
  justifications: sampleAnswers(),
};

function mockAdmin(reloadError: string | null = null) {
  const calls: Calls = [];
  installMock(async (cmd, args) => {
    calls.push({ cmd, args });
    switch (cmd) {
      case "facets":
        return {
          services: SERVICES.map((s) => ({ value: s.id, label: s.name })),
          categories: [{ value: "chat", label: "chat" }],
          users: [{ value: "alice", label: "alice" }],
          programs: [{ value: "firefox", label: "firefox" }],
          rules: POLICY.rules.map((r) => ({ value: r.id, label: r.id })),
        };
      case "search_events":
        return { total: 0, offset: 0, events: [] };
      case "event_stats":
        return STATS;
      case "catalog":
        return CATALOG;
      case "policy":
        return { policy: POLICY, reload_error: reloadError };
      default:
        throw commandError("internal", cmd);
    }
  });
  return calls;
}

const queries = (calls: Calls, cmd: string) => calls.filter((c) => c.cmd === cmd).map((c) => c.args.query as EventQuery);

describe("security views", () => {
  it("filters the events: multi-select and debounced text", async () => {
    const calls = mockAdmin();
    renderIn(<SecurityView sub="events" onSub={() => {}} panels={SECURITY_PANELS} />);
    await waitFor(() => expect(queries(calls, "search_events")).toHaveLength(1));
    fireEvent.click(screen.getByTestId("filter-service").querySelector("button")!);
    fireEvent.click(await screen.findByLabelText("Claude"));
    fireEvent.click(screen.getByLabelText("ChatGPT"));
    await waitFor(() => expect(queries(calls, "search_events").at(-1)!.services).toEqual(["chatgpt", "claude"]));
    fireEvent.keyDown(screen.getByLabelText("ChatGPT"), { key: "Escape" });
    expect(screen.queryByLabelText("ChatGPT")).toBeNull();

    fireEvent.click(screen.getByTestId("filter-action").querySelector("button")!);
    fireEvent.click(await screen.findByLabelText("Bloqué"));
    await waitFor(() => expect(queries(calls, "search_events").at(-1)!.actions).toEqual(["block"]));

    const before = queries(calls, "search_events").length;
    const text = screen.getByTestId("filter-text");
    fireEvent.input(text, { target: { value: "g" } });
    fireEvent.input(text, { target: { value: "gp" } });
    fireEvent.input(text, { target: { value: "gpt" } });
    expect(queries(calls, "search_events")).toHaveLength(before); // not yet: debounced
    await waitFor(() => expect(queries(calls, "search_events").at(-1)!.text).toBe("gpt"));
    expect(queries(calls, "search_events")).toHaveLength(before + 1);
  });

  it("draws the charts for the same selection", async () => {
    const calls = mockAdmin();
    renderIn(<SecurityView sub="charts" onSub={() => {}} panels={SECURITY_PANELS} />);
    expect(await screen.findByTestId("chart-timeline")).toBeTruthy();
    const top = screen.getByTestId("chart-top-services");
    expect(top.textContent).toContain("ChatGPT");
    expect(top.textContent).toContain("800");
    expect(screen.getByText(/^1\s234 événements$/u)).toBeTruthy();
    expect(screen.getAllByTestId("justification-row")).toHaveLength(4);
    fireEvent.click(screen.getByText("24 h"));
    await waitFor(() => expect(queries(calls, "event_stats")).toHaveLength(2));
    const [a, b] = queries(calls, "event_stats");
    expect(b!.from! - a!.from!).toBeGreaterThan(6 * 24 * 3_600_000_000 - 60_000_000);
  });

  it("lists the catalog and shows a service's detail", async () => {
    mockAdmin();
    renderIn(<SecurityView sub="catalog" onSub={() => {}} panels={SECURITY_PANELS} />);
    const rows = await screen.findAllByTestId("catalog-row");
    expect(rows).toHaveLength(SERVICES.length);
    fireEvent.input(screen.getByLabelText("Rechercher un service"), { target: { value: "mistral" } });
    expect(screen.getAllByTestId("catalog-row")).toHaveLength(1);
    fireEvent.keyDown(screen.getByTestId("catalog-row"), { key: "Enter" });
    const detail = await screen.findByRole("complementary");
    expect(detail.textContent).toContain("chat.mistral.ai");
    expect(detail.textContent).toContain("France");
  });

  it("shows the policy, and a rejected policy file prominently", async () => {
    mockAdmin("default.toml:3:1: unknown field `actoin`");
    renderIn(<SecurityView sub="policy" onSub={() => {}} panels={SECURITY_PANELS} />);
    const err = await screen.findByTestId("policy-error");
    expect(err.textContent).toContain(
      "La dernière modification du fichier de politique a été rejetée ; la politique précédente reste en vigueur :",
    );
    expect(err.querySelector("pre")!.textContent).toBe("default.toml:3:1: unknown field `actoin`");
    expect(screen.getAllByTestId("policy-rule")).toHaveLength(POLICY.rules.length);
    expect(screen.getByText("4 heures", { exact: false })).toBeTruthy();
  });
});
