import { fireEvent, screen, within } from "@testing-library/preact";
import { describe, expect, it } from "vitest";

import { CATALOG, sampleInventory } from "../dev/fixtures";
import { commandError, installMock } from "../ipc/testing";
import { renderIn } from "../test/render";
import { SoftwareView } from "./software";

function setup(admin: boolean) {
  const asked: unknown[] = [];
  installMock(async (cmd, args) => {
    switch (cmd) {
      case "inventory":
        asked.push(args.everyone);
        if (args.everyone && !admin) throw commandError("forbidden", "this needs the vigie-admin group");
        return args.everyone ? sampleInventory() : sampleInventory().filter((r) => r.uid === 1000);
      case "catalog":
        return CATALOG;
      default:
        throw commandError("internal", `unexpected ${cmd}`);
    }
  });
  return asked;
}

describe("Logiciels IA", () => {
  it("lists every user's AI software with where it sends data and how broad its rights are", async () => {
    const asked = setup(true);
    renderIn(<SoftwareView everyone />);
    const rows = await screen.findAllByTestId("software-row");
    expect(rows.length).toBe(sampleInventory().length);
    expect(asked).toEqual([true]);
    const sider = rows.find((r) => r.textContent?.includes("Sider"))!;
    expect(sider.textContent).toContain("Extension de navigateur");
    expect(sider.textContent).toContain("7 droits, 2 étendus");
    const filesystem = rows.find((r) => r.textContent?.includes("filesystem"))!;
    expect(filesystem.textContent).toContain("4 droits");
    expect(filesystem.textContent).not.toContain("étendu");
    const cursor = rows.find((r) => r.textContent?.includes("Cursor"))!;
    expect(cursor.textContent).toContain("Profil");
    const box = rows.find((r) => r.textContent?.includes("ChatGPTBox"))!;
    expect(box.textContent).toContain("Non catalogué");
    expect(rows.some((r) => r.textContent?.includes("bob"))).toBe(true);
  });

  it("shows a find's rights in words, the broad ones marked, and filters by kind", async () => {
    setup(true);
    renderIn(<SoftwareView everyone />);
    fireEvent.click((await screen.findAllByText("Cline"))[0]!);
    const rights = await screen.findByTestId("software-rights");
    const text = rights.textContent ?? "";
    expect(text).toContain("Exécute sans demander : npm test");
    expect(text).toContain("Outils lancés sans confirmation");
    expect(text).toContain("Confiance de l'espace de travail désactivée");
    expect(within(rights).getAllByText("étendu").length).toBe(3);
    fireEvent.change(screen.getByTestId("software-kind"), { target: { value: "mcp-server" } });
    const mcp = await screen.findAllByTestId("software-row");
    expect(mcp.length).toBe(2);
    expect(mcp.every((r) => r.textContent?.includes("Serveur MCP"))).toBe(true);
  });

  it("shows an employee their own software, in English too", async () => {
    const asked = setup(false);
    renderIn(<SoftwareView everyone={false} />, "en");
    const rows = await screen.findAllByTestId("software-row");
    expect(asked).toEqual([false]);
    expect(rows.length).toBe(sampleInventory().filter((r) => r.uid === 1000).length);
    expect(rows.some((r) => r.textContent?.includes("Local (model on this machine)") || r.textContent?.includes("Ollama"))).toBe(true);
  });

  it("refuses everyone's software to a non-admin with the forbidden panel", async () => {
    setup(false);
    renderIn(<SoftwareView everyone />);
    expect(await screen.findByTestId("forbidden-panel")).toBeTruthy();
  });
});
