import { screen } from "@testing-library/preact";
import { describe, expect, it } from "vitest";

import { CATALOG, POLICY } from "../dev/fixtures";
import type { Policy } from "../ipc/gen/Policy";
import { commandError, installMock } from "../ipc/testing";
import { renderIn } from "../test/render";
import { RulesView } from "./rules";

function setup(policy: Policy) {
  installMock(async (cmd) => {
    switch (cmd) {
      case "policy":
        return { policy, reload_error: null };
      case "catalog":
        return CATALOG;
      default:
        throw commandError("internal", `unexpected ${cmd}`);
    }
  });
}

describe("rules view: the clipboard", () => {
  it("tells employees what is watched, what happens, and that content is not kept", async () => {
    setup(POLICY);
    renderIn(<RulesView />);
    const panel = await screen.findByTestId("rules-clipboard");
    const text = panel.textContent ?? "";
    expect(text).toContain("secrets (clés d'API, clés privées, mots de passe) : retiré du presse-papiers");
    expect(text).toContain("code source : avertissement");
    expect(text).toContain("jamais enregistré ni transmis");
  });

  it("says so when the guard is off, in English too", async () => {
    setup({ ...POLICY, clipboard: { ...POLICY.clipboard, enabled: false } });
    renderIn(<RulesView />, "en");
    expect((await screen.findByTestId("rules-clipboard")).textContent).toContain(
      "The clipboard is not watched on this workstation.",
    );
  });
});
