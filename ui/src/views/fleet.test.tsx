import { fireEvent, screen, waitFor, within } from "@testing-library/preact";
import { describe, expect, it } from "vitest";

import { CATALOG, filterFinds, sampleFleet } from "../dev/fixtures";
import type { FleetException } from "../ipc/gen/FleetException";
import type { FleetFind } from "../ipc/gen/FleetFind";
import { commandError, installMock } from "../ipc/testing";
import { renderIn } from "../test/render";
import { FleetView } from "./fleet";

function setup(options: { ready?: boolean; refuse?: boolean } = {}) {
  const calls: { cmd: string; args: Record<string, unknown> }[] = [];
  const fleet = sampleFleet(Date.now());
  let finds: FleetFind[] = fleet.finds;
  let exceptions: FleetException[] = fleet.exceptions;
  installMock(async (cmd, args) => {
    calls.push({ cmd, args });
    switch (cmd) {
      case "fleet_status":
        return { collector: options.ready === false ? null : "https://c:8443", ca: "/etc/vigie/fleet-ca.pem", identity: "/home/r/.config/vigie/admin.pem", ready: options.ready !== false };
      case "fleet_overview":
        if (options.refuse) throw commandError("forbidden", "403: this administrator's certificate is revoked");
        return fleet.overview;
      case "fleet_inventory":
        return filterFinds(finds, args.filter);
      case "fleet_recertify": {
        const decided = { right: String(args.right), decision: String(args.decision), by: "rssi", at: new Date().toISOString(), note: String(args.note) };
        finds = finds.map((f) =>
          f.find === args.find ? { ...f, decisions: [...f.decisions, decided], pending: f.pending.filter((r) => r !== args.right) } : f,
        );
        return decided;
      }
      case "fleet_exceptions":
        return args.filter === "pending" ? exceptions.filter((r) => r.decision === null) : exceptions;
      case "fleet_decide_exception": {
        const decided = { decision: String(args.decision), by: "rssi", at: new Date().toISOString(), note: String(args.note) };
        exceptions = exceptions.map((r) => (r.request === args.request ? { ...r, decision: decided } : r));
        return decided;
      }
      case "catalog":
        return CATALOG;
      case "fleet_report":
        return { path: `/home/r/Téléchargements/vigie-revue-${String(args.from)}-${String(args.to)}.html`, bytes: 1000 };
      default:
        throw commandError("internal", `unexpected ${cmd}`);
    }
  });
  return calls;
}

describe("Parc", () => {
  it("says what is missing before it can reach the collector", async () => {
    setup({ ready: false });
    renderIn(<FleetView />);
    const panel = await screen.findByTestId("fleet-setup");
    expect(panel.textContent).toContain("vigie-collector admin-cert");
    expect(panel.textContent).toContain("manquant");
  });

  it("shows the workstations, the silent ones, and each export's lag", async () => {
    setup();
    renderIn(<FleetView />);
    const agents = await screen.findAllByTestId("fleet-agent");
    expect(agents.length).toBe(4);
    expect(screen.getByTestId("fleet-silent").textContent).toContain("2 silencieux");
    expect(agents.find((a) => a.textContent?.includes("pc-dsi-07"))!.textContent).toContain("jamais");
    const exports = screen.getAllByTestId("fleet-export");
    expect(exports[0]!.textContent).toContain("à jour");
    expect(exports[1]!.textContent).toContain("il y a 42 min");
    expect(exports[1]!.textContent).toContain("503 Service Unavailable");
  });

  it("records a decision on a pending right under the administrator's name", async () => {
    const calls = setup();
    renderIn(<FleetView />);
    const finds = await screen.findAllByTestId("fleet-find");
    expect(finds.length).toBe(2);
    const sider = finds.find((f) => f.textContent?.includes("Sider"))!;
    fireEvent.input(within(sider).getByTestId("fleet-note"), { target: { value: "barre latérale seulement" } });
    fireEvent.click(within(sider).getAllByTestId("fleet-remove")[0]!);
    await screen.findByText(/à retirer, décidé par rssi/);
    const asked = calls.find((c) => c.cmd === "fleet_recertify")!;
    expect(asked.args).toEqual({ find: "f000000000000001", right: "all-sites", decision: "remove", note: "barre latérale seulement" });
    // Every broad right, decided ones with who and when.
    fireEvent.change(screen.getByTestId("fleet-filter"), { target: { value: "broad" } });
    await waitFor(() => expect(screen.getAllByTestId("fleet-find").length).toBe(3));
    const all = screen.getAllByTestId("fleet-find");
    expect(all.find((f) => f.textContent?.includes("Cline"))!.textContent).toContain("conservé par rssi@example.org");
    // The whole fleet's AI software, with or without a broad right.
    fireEvent.change(screen.getByTestId("fleet-filter"), { target: { value: "all" } });
    await waitFor(() => expect(screen.getAllByTestId("fleet-find").length).toBe(4));
    const plain = screen.getAllByTestId("fleet-find").find((f) => f.textContent?.includes("Continue"))!;
    expect(plain.textContent).toContain("aucun droit étendu");
    expect(within(plain).queryByTestId("fleet-keep")).toBeNull();
    expect(calls.filter((c) => c.cmd === "fleet_inventory").map((c) => c.args.filter)).toEqual(["pending", "pending", "broad", "all"]); // the list is read again after the decision
  });

  it("grants or refuses an exception request, the decision shown with who and when", async () => {
    const calls = setup();
    renderIn(<FleetView />);
    const pending = await screen.findAllByTestId("fleet-exception");
    expect(pending.length).toBe(1);
    expect(pending[0]!.textContent).toContain("Traduire un communiqué de presse");
    fireEvent.input(within(pending[0]!).getByTestId("fleet-exception-note"), { target: { value: "Pour ce communiqué seulement" } });
    fireEvent.click(within(pending[0]!).getByTestId("fleet-grant"));
    await waitFor(() => expect(screen.queryAllByTestId("fleet-exception").length).toBe(0));
    expect(calls.find((c) => c.cmd === "fleet_decide_exception")!.args).toEqual({
      request: "a1b2c3d4e5f60718",
      decision: "grant",
      note: "Pour ce communiqué seulement",
    });
    fireEvent.change(screen.getByTestId("fleet-exception-filter"), { target: { value: "all" } });
    await waitFor(() => expect(screen.getAllByTestId("fleet-exception-decided").length).toBe(2));
    const decided = screen.getAllByTestId("fleet-exception-decided").map((d) => d.textContent);
    expect(decided.some((d) => d?.includes("accordée par rssi") && d.includes("Pour ce communiqué seulement"))).toBe(true);
    expect(decided.some((d) => d?.includes("refusée par rssi@example.org"))).toBe(true);
  });

  it("writes the periodic review and says where", async () => {
    setup();
    renderIn(<FleetView />);
    fireEvent.input(await screen.findByTestId("fleet-report-from"), { target: { value: "2026-11-01" } });
    fireEvent.input(screen.getByTestId("fleet-report-to"), { target: { value: "2026-11-30" } });
    fireEvent.click(screen.getByTestId("fleet-report"));
    expect((await screen.findByTestId("fleet-report-done")).textContent).toContain("vigie-revue-2026-11-01-2026-11-30.html");
  });

  it("says plainly when the collector refuses the certificate", async () => {
    setup({ refuse: true });
    renderIn(<FleetView />);
    expect(await screen.findByTestId("forbidden-panel")).toBeTruthy();
  });
});
