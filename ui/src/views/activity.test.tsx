import { fireEvent, screen, waitFor, within } from "@testing-library/preact";
import { describe, expect, it } from "vitest";

import { CATALOG, NOW_MICROS, sampleAnswers, sampleEvent } from "../dev/fixtures";
import { makeI18n } from "../i18n";
import { ACTIVITY_EVENT } from "../ipc/commands";
import type { Event } from "../ipc/gen/Event";
import { commandError, emitEvent, installMock } from "../ipc/testing";
import { answerStatus } from "../lib/answers";
import { renderIn, type Calls } from "../test/render";
import { ACTIVITY_DEBOUNCE_MS, ACTIVITY_PAGE, ActivityView } from "./activity";

describe("Mon activité", () => {
  it("lists my events with what each decision means, and my answers", async () => {
    const calls: Calls = [];
    const now = Date.now() * 1000;
    installMock(async (cmd, args) => {
      calls.push({ cmd, args });
      if (cmd === "my_events") {
        const offset = args.offset as number;
        const events = Array.from({ length: Math.min(ACTIVITY_PAGE, 30 - offset) }, (_, i) => sampleEvent(offset + i));
        return { total: 30, offset, events };
      }
      if (cmd === "my_answers") return sampleAnswers(now);
      if (cmd === "catalog") return CATALOG;
      throw commandError("internal", cmd);
    });
    renderIn(<ActivityView />);
    const rows = await screen.findAllByTestId("activity-row");
    expect(rows).toHaveLength(ACTIVITY_PAGE);
    const e0 = sampleEvent(0);
    expect(rows[0]!.textContent).toContain(e0.service_name);
    expect(rows[0]!.textContent).toContain(e0.name);
    const meanings: Record<string, string> = {
      block: "Bloqué : le service n'est pas autorisé",
      coach: "Justification demandée",
      warn: "Autorisé avec avertissement",
      monitor: "Autorisé, enregistré",
      allow: "Autorisé",
    };
    expect(rows[0]!.textContent).toContain(meanings[e0.action]);

    const answers = await screen.findAllByTestId("answers-row");
    expect(answers).toHaveLength(4);
    expect(answers[0]!.textContent).toMatch(/GitHub Copilot.*Justification.*Accès accordé jusqu'à/);
    expect(answers[1]!.textContent).toContain("Expiré");
    expect(answers[2]!.textContent).toContain("Demande d'exception");
    expect(answers[2]!.textContent).toContain("Transmise à l'équipe sécurité");

    fireEvent.click(screen.getByText("Page suivante"));
    await waitFor(() => expect(screen.getAllByTestId("activity-row")).toHaveLength(5));
    expect(calls.filter((c) => c.cmd === "my_events").map((c) => c.args)).toEqual([
      { offset: 0, limit: ACTIVITY_PAGE },
      { offset: ACTIVITY_PAGE, limit: ACTIVITY_PAGE },
    ]);
    expect(within(screen.getAllByTestId("activity-row")[0]!).getByText(sampleEvent(25).name)).toBeTruthy();
  });

  it("fetches again, once, when the agent says there is new activity", async () => {
    const calls: Calls = [];
    let stored: Event[] = [sampleEvent(1), sampleEvent(2)];
    installMock(async (cmd, args) => {
      calls.push({ cmd, args });
      if (cmd === "my_events") return { total: stored.length, offset: 0, events: stored };
      if (cmd === "my_answers") return [];
      if (cmd === "catalog") return CATALOG;
      throw commandError("internal", cmd);
    });
    renderIn(<ActivityView />);
    expect(await screen.findAllByTestId("activity-row")).toHaveLength(2);
    const fetches = (cmd: string) => calls.filter((c) => c.cmd === cmd).length;
    expect([fetches("my_events"), fetches("my_answers")]).toEqual([1, 1]);

    const fresh = { ...sampleEvent(0), id: "fresh", name: "chat.fresh.example" };
    stored = [fresh, ...stored];
    const t0 = Date.now();
    // A burst of notices is one fetch, once they settle.
    for (let i = 0; i < 3; i++) await emitEvent(ACTIVITY_EVENT, t0 * 1000 + i);
    expect(fetches("my_events")).toBe(1);
    await waitFor(() => expect(screen.getAllByTestId("activity-row")).toHaveLength(3), { timeout: 3000 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(ACTIVITY_DEBOUNCE_MS - 50);
    expect(screen.getAllByTestId("activity-row")[0]!.textContent).toContain("chat.fresh.example");
    expect([fetches("my_events"), fetches("my_answers"), fetches("catalog")]).toEqual([2, 2, 1]);
    await new Promise((resolve) => setTimeout(resolve, ACTIVITY_DEBOUNCE_MS + 100));
    expect(fetches("my_events")).toBe(2);
  });

  it("leaves a hidden window alone until it is shown", async () => {
    const calls: Calls = [];
    installMock(async (cmd, args) => {
      calls.push({ cmd, args });
      if (cmd === "my_events") return { total: 1, offset: 0, events: [sampleEvent(1)] };
      if (cmd === "my_answers") return [];
      if (cmd === "catalog") return CATALOG;
      throw commandError("internal", cmd);
    });
    const visibility = (state: DocumentVisibilityState) => {
      Object.defineProperty(document, "visibilityState", { value: state, configurable: true });
      document.dispatchEvent(new window.Event("visibilitychange"));
    };
    try {
      renderIn(<ActivityView />);
      expect(await screen.findAllByTestId("activity-row")).toHaveLength(1);
      visibility("hidden");
      await emitEvent(ACTIVITY_EVENT, Date.now() * 1000);
      await new Promise((resolve) => setTimeout(resolve, ACTIVITY_DEBOUNCE_MS + 100));
      expect(calls.filter((c) => c.cmd === "my_events")).toHaveLength(1);
      visibility("visible");
      await waitFor(() => expect(calls.filter((c) => c.cmd === "my_events")).toHaveLength(2));
    } finally {
      Reflect.deleteProperty(document, "visibilityState");
    }
  });

  it("says when the agent does not answer", async () => {
    installMock(async () => {
      throw commandError("not-connected", "down");
    });
    renderIn(<ActivityView />);
    expect((await screen.findAllByText("L'agent Vigie ne répond pas")).length).toBeGreaterThan(0);
  });

  it("words an answer's status", () => {
    const [active, expired, exception, ack] = sampleAnswers(NOW_MICROS);
    const now = NOW_MICROS / 1000;
    const en = makeI18n("en");
    expect(answerStatus(active!, en, now)).toMatch(/^Access granted until \d\d:\d\d$/);
    expect(answerStatus(expired!, en, now)).toBe("Expired");
    expect(answerStatus(exception!, en, now)).toBe("Sent to the security team");
    expect(answerStatus(ack!, en, now)).toBe("Recorded");
  });
});
