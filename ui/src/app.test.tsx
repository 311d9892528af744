import { fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { describe, expect, it } from "vitest";

import { CATALOG, POLICY } from "./dev/fixtures";
import { App } from "./app";
import { CONNECTION_EVENT } from "./ipc/commands";
import { commandError, emitEvent, installMock } from "./ipc/testing";

function mockAgent({ admin }: { admin: boolean }) {
  installMock(async (cmd) => {
    switch (cmd) {
      case "connection_status":
        return { connected: true, socket: "/run/vigie/agent.sock", hello: { protocol: 1, agent: "t", uid: 1000, user: "alice", admin }, error: null };
      case "my_events":
        return { total: 0, offset: 0, events: [] };
      case "my_answers":
        return [];
      case "catalog":
        return CATALOG;
      case "policy":
        return { policy: POLICY, reload_error: null };
      case "facets":
      case "search_events":
        if (!admin) throw commandError("forbidden", "needs vigie-admin");
        return cmd === "facets"
          ? { services: [], categories: [], users: [], programs: [], rules: [] }
          : { total: 0, offset: 0, events: [] };
      default:
        throw commandError("internal", cmd);
    }
  });
}

describe("main window", () => {
  it("shows the connection, the user, and the security tab only to admins", async () => {
    localStorage.setItem("vigie.locale", "fr");
    mockAgent({ admin: false });
    render(<App />);
    await waitFor(() => expect(screen.getByTestId("connection-state").textContent).toBe("Connecté à l'agent"));
    expect(screen.getByText("Utilisateur : alice")).toBeTruthy();
    expect(screen.getByTestId("tab-activity").getAttribute("aria-selected")).toBe("true");
    expect(screen.queryByTestId("tab-security")).toBeNull();
    expect(await screen.findByText("Aucun accès à un service d'IA générative enregistré.")).toBeTruthy();

    // The agent goes away.
    await emitEvent(CONNECTION_EVENT, { connected: false, socket: "/run/vigie/agent.sock", hello: null, error: "connection refused" });
    await waitFor(() =>
      expect(screen.getByTestId("connection-state").textContent).toBe("Agent injoignable — nouvelle tentative…connection refused"),
    );
  });

  it("navigates the tabs with the keyboard, and switches language", async () => {
    localStorage.setItem("vigie.locale", "fr");
    mockAgent({ admin: true });
    render(<App />);
    const security = await screen.findByTestId("tab-security");
    const activity = screen.getByTestId("tab-activity");
    fireEvent.keyDown(activity, { key: "ArrowRight" });
    await waitFor(() => expect(screen.getByTestId("tab-rules").getAttribute("aria-selected")).toBe("true"));
    expect(location.hash).toBe("#/rules");
    expect(await screen.findByText("Règles en vigueur")).toBeTruthy();
    fireEvent.click(security);
    expect(await screen.findByTestId("tab-events")).toBeTruthy();
    expect(location.hash).toBe("#/security/events");
    expect(await screen.findByTestId("events-total")).toBeTruthy();
    fireEvent.click(screen.getByText("EN"));
    expect(await screen.findByText("My activity")).toBeTruthy();
    expect(localStorage.getItem("vigie.locale")).toBe("en");
  });

  it("shows the forbidden panel when a non-admin opens a security view", async () => {
    localStorage.setItem("vigie.locale", "fr");
    location.hash = "#/security/events";
    mockAgent({ admin: false });
    render(<App />);
    expect(await screen.findByTestId("forbidden-panel")).toBeTruthy();
  });
});

describe("reconnection", () => {
  it("reloads the view when the agent comes back", async () => {
    localStorage.setItem("vigie.locale", "fr");
    let up = false;
    installMock(async (cmd) => {
      if (cmd === "connection_status") return { connected: false, socket: "s", hello: null, error: "refused" };
      if (!up) throw commandError("not-connected", "refused");
      if (cmd === "my_events") return { total: 0, offset: 0, events: [] };
      if (cmd === "my_answers") return [];
      if (cmd === "inventory") return [];
      if (cmd === "catalog") return CATALOG;
      throw commandError("internal", cmd);
    });
    render(<App />);
    // Events, answers and the user's AI software: each says so.
    expect((await screen.findAllByText("L'agent Vigie ne répond pas")).length).toBe(3);
    up = true;
    await emitEvent(CONNECTION_EVENT, {
      connected: true,
      socket: "s",
      hello: { protocol: 1, agent: "t", uid: 1000, user: "alice", admin: false },
      error: null,
    });
    expect(await screen.findByText("Aucun accès à un service d'IA générative enregistré.")).toBeTruthy();
    expect(screen.queryByText("L'agent Vigie ne répond pas")).toBeNull();
  });
});
