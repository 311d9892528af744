import { fireEvent, screen, waitFor } from "@testing-library/preact";
import { describe, expect, it } from "vitest";

import { samplePrompt } from "../dev/fixtures";
import { PROMPTS_EVENT } from "../ipc/commands";
import type { AnswerParams } from "../ipc/gen/AnswerParams";
import type { Prompt } from "../ipc/gen/Prompt";
import { commandError, emitEvent, inWindow, installMock } from "../ipc/testing";
import { formatTime } from "../lib/format";
import { renderIn, type Calls } from "../test/render";
import { PromptView } from "./prompt";

const BYPASS = Date.UTC(2026, 10, 27, 19, 30) * 1000;

const hides = (calls: Calls) => calls.filter((c) => c.cmd === "plugin:window|hide").length;

function setup(prompts: Prompt[], answer?: (a: AnswerParams) => unknown) {
  const calls: Calls = [];
  inWindow("prompt");
  installMock(async (cmd, args) => {
    calls.push({ cmd, args });
    switch (cmd) {
      case "pending_prompts":
        return prompts;
      case "answer_prompt": {
        const a = args.answer as AnswerParams;
        if (answer) return answer(a);
        const p = prompts.find((x) => x.id === a.prompt)!;
        const kind = a.justification ? "justified" : a.exception ? "exception-requested" : "acknowledged";
        return { prompt: p, kind, text: a.justification ?? a.exception ?? null, bypass_until: kind === "justified" ? BYPASS : null };
      }
      case "dismiss_prompt":
      case "open_alternative":
      case "plugin:window|hide":
        return null;
      default:
        throw commandError("internal", `unexpected ${cmd}`);
    }
  });
  return calls;
}

describe("prompt window", () => {
  it("coach: Continuer stays disabled below the minimum, then sends the justification", async () => {
    const calls = setup([samplePrompt(7, "coach", "claude", 4)]);
    renderIn(<PromptView />);
    expect(await screen.findByTestId("prompt-title")).toHaveProperty("textContent", "Claude : justification requise");
    expect(screen.getByTestId("prompt-service").textContent).toContain("Anthropic");
    expect(screen.getByTestId("prompt-message").textContent).toContain("n'est pas approuvé");
    expect(screen.getByTestId("prompt-repeats").textContent).toBe("Atteint 4 fois");
    expect(screen.getByText(/Recommandation R34 de l'ANSSI/)).toBeTruthy();
    expect(screen.getByTestId("prompt-alternative").textContent).toBe("Ouvrir Assistant IA interne");

    const box = screen.getByTestId("prompt-justification") as HTMLTextAreaElement;
    const cont = screen.getByTestId("prompt-continue") as HTMLButtonElement;
    await waitFor(() => expect(document.activeElement).toBe(box)); // the first control to act on
    expect(cont.disabled).toBe(true);
    fireEvent.input(box, { target: { value: "   trop court      " } });
    expect(cont.disabled).toBe(true);
    expect(screen.getByText("10 / 20 caractères minimum")).toBeTruthy();
    const text = "Relecture d'un article public, sans donnée interne";
    fireEvent.input(box, { target: { value: `  ${text} ` } });
    expect(cont.disabled).toBe(false);
    fireEvent.click(cont);

    const done = await screen.findByTestId("prompt-confirmation");
    expect(done.textContent).toContain(`Accès autorisé jusqu'à ${formatTime(BYPASS, "fr")}`);
    expect(calls.find((c) => c.cmd === "answer_prompt")?.args).toEqual({ answer: { prompt: 7, justification: text } });
  });

  it("block: asks for an exception, or acknowledges", async () => {
    const calls = setup([samplePrompt(3, "block", "deepseek"), samplePrompt(4, "block", "kimi")]);
    renderIn(<PromptView />);
    expect((await screen.findByTestId("prompt-title")).textContent).toBe("L'accès à DeepSeek est bloqué sur ce poste");
    await waitFor(() => expect(document.activeElement).toBe(screen.getByTestId("prompt-alternative")));
    expect(screen.queryByTestId("prompt-repeats")).toBeNull();

    fireEvent.click(screen.getByTestId("prompt-exception-toggle"));
    const box = await screen.findByTestId("prompt-exception-text");
    const send = screen.getByTestId("prompt-exception-send") as HTMLButtonElement;
    expect(send.disabled).toBe(true);
    fireEvent.input(box, { target: { value: "Comparaison de modèles pour un appel d'offres" } });
    fireEvent.click(send);
    expect((await screen.findByTestId("prompt-confirmation")).textContent).toContain("Demande transmise à l'équipe sécurité");
    expect(calls.find((c) => c.cmd === "answer_prompt")?.args).toEqual({
      answer: { prompt: 3, exception: "Comparaison de modèles pour un appel d'offres" },
    });

    // The next prompt, acknowledged.
    fireEvent.click(screen.getByText("Fermer"));
    expect((await screen.findByTestId("prompt-title")).textContent).toBe("L'accès à Kimi est bloqué sur ce poste");
    fireEvent.click(screen.getByTestId("prompt-ack"));
    await waitFor(() => expect(calls.filter((c) => c.cmd === "answer_prompt")).toHaveLength(2));
    expect(calls.filter((c) => c.cmd === "answer_prompt")[1]!.args).toEqual({ answer: { prompt: 4 } });
    // The Rust side hides the window after the last acknowledgement; were
    // it left up, it can be closed.
    expect(await screen.findByText("Aucune alerte en attente.")).toBeTruthy();
    fireEvent.click(screen.getByTestId("prompt-close"));
    await waitFor(() => expect(hides(calls)).toBe(1));
  });

  it("warn: headline in English, acknowledgement, alternative", async () => {
    const calls = setup([samplePrompt(9, "warn", "le-chat")]);
    renderIn(<PromptView />, "en");
    expect((await screen.findByTestId("prompt-title")).textContent).toBe(
      "Caution: Le Chat is a public generative-AI service",
    );
    expect(screen.getByTestId("prompt-message").textContent).toContain("Do not enter any sensitive");
    expect(screen.queryByTestId("prompt-justification")).toBeNull();
    expect(screen.queryByTestId("prompt-exception-toggle")).toBeNull();
    fireEvent.click(screen.getByTestId("prompt-alternative"));
    await waitFor(() => expect(calls.some((c) => c.cmd === "open_alternative" && c.args.id === 9)).toBe(true));
    fireEvent.click(screen.getByTestId("prompt-ack"));
    await waitFor(() => expect(calls.find((c) => c.cmd === "answer_prompt")?.args).toEqual({ answer: { prompt: 9 } }));
  });

  it("clipboard block: says what was found and that the clipboard was replaced, no exception", async () => {
    const pasted: Prompt = {
      ...samplePrompt(11, "block", "chatgpt"),
      name: "nir:1 email:2",
      program: "firefox-esr",
      message: {
        fr: "Le presse-papiers contenait des données sensibles alors qu'un service d'IA générative public est actif.",
        en: "The clipboard held sensitive data while a public generative-AI service was active.",
      },
      clipboard: {
        detectors: [
          { detector: "nir", count: 1 },
          { detector: "email", count: 2 },
        ],
        cleared: true,
      },
    };
    const calls = setup([pasted]);
    renderIn(<PromptView />);
    expect((await screen.findByTestId("prompt-title")).textContent).toBe("Contenu sensible retiré du presse-papiers");
    const found = screen.getByTestId("prompt-clipboard").textContent ?? "";
    expect(found).toContain("numéro de sécurité sociale (NIR) ×1");
    expect(found).toContain("adresse e-mail ×2");
    expect(screen.getByTestId("prompt-clipboard-cleared").textContent).toContain("avertissement");
    expect(screen.getByText(/Presse-papiers → ChatGPT · firefox-esr/)).toBeTruthy();
    expect(screen.queryByTestId("prompt-exception-toggle")).toBeNull();
    fireEvent.click(screen.getByTestId("prompt-ack"));
    await waitFor(() => expect(calls.find((c) => c.cmd === "answer_prompt")?.args).toEqual({ answer: { prompt: 11 } }));
  });

  it("clipboard warn, in English: the clipboard is left alone", async () => {
    setup([
      {
        ...samplePrompt(12, "warn", "claude"),
        clipboard: { detectors: [{ detector: "iban", count: 1 }], cleared: false },
      },
    ]);
    renderIn(<PromptView />, "en");
    expect((await screen.findByTestId("prompt-title")).textContent).toBe(
      "Sensitive content: do not paste it into Claude",
    );
    expect(screen.getByTestId("prompt-clipboard").textContent).toContain("IBAN ×1");
    expect(screen.queryByTestId("prompt-clipboard-cleared")).toBeNull();
  });

  it("Escape dismisses the prompt (Plus tard)", async () => {
    const calls = setup([samplePrompt(5, "coach", "cursor")]);
    renderIn(<PromptView />);
    const box = await screen.findByTestId("prompt-justification");
    await waitFor(() => expect(document.activeElement).toBe(box));
    fireEvent.keyDown(box, { key: "Escape" });
    await waitFor(() => expect(calls.find((c) => c.cmd === "dismiss_prompt")?.args).toEqual({ id: 5 }));
    expect(await screen.findByText("Aucune alerte en attente.")).toBeTruthy();
  });

  it("Escape keeps a justification being typed", async () => {
    const calls = setup([samplePrompt(5, "coach", "cursor")]);
    renderIn(<PromptView />);
    const box = (await screen.findByTestId("prompt-justification")) as HTMLTextAreaElement;
    fireEvent.input(box, { target: { value: "Une justification en cours" } });
    fireEvent.keyDown(box, { key: "Escape" });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls.some((c) => c.cmd === "dismiss_prompt")).toBe(false);
    expect(hides(calls)).toBe(0);
    expect(box.value).toBe("Une justification en cours");
  });

  it("Escape with nothing left hides the window", async () => {
    const calls = setup([]);
    renderIn(<PromptView />);
    expect(await screen.findByText("Aucune alerte en attente.")).toBeTruthy();
    fireEvent.keyDown(document.body, { key: "Escape" });
    await waitFor(() => expect(hides(calls)).toBe(1));
  });

  it("Escape closes a confirmation, and the window with it when it was the last prompt", async () => {
    const calls = setup([samplePrompt(3, "block", "deepseek")]);
    renderIn(<PromptView />);
    fireEvent.click(await screen.findByTestId("prompt-exception-toggle"));
    fireEvent.input(await screen.findByTestId("prompt-exception-text"), { target: { value: "Audit" } });
    fireEvent.click(screen.getByTestId("prompt-exception-send"));
    const done = await screen.findByTestId("prompt-confirmation");
    await waitFor(() => expect(document.activeElement?.textContent).toBe("Fermer"));
    expect(hides(calls)).toBe(0);
    fireEvent.keyDown(done, { key: "Escape" });
    await waitFor(() => expect(hides(calls)).toBe(1));
    expect(screen.queryByTestId("prompt-confirmation")).toBeNull();
    expect(calls.some((c) => c.cmd === "dismiss_prompt")).toBe(false);
  });

  it("follows the pushed list, pages through several prompts", async () => {
    setup([]);
    renderIn(<PromptView />);
    expect(await screen.findByText("Aucune alerte en attente.")).toBeTruthy();
    await emitEvent(PROMPTS_EVENT, [samplePrompt(1, "warn", "le-chat"), samplePrompt(2, "block", "deepseek", 2)]);
    expect((await screen.findByTestId("prompt-title")).textContent).toContain("Le Chat");
    expect(screen.getByText("1 / 2")).toBeTruthy();
    fireEvent.click(screen.getByLabelText("Alerte suivante"));
    expect((await screen.findByText("2 / 2")) && screen.getByTestId("prompt-title").textContent).toContain("DeepSeek");
    expect(screen.getByTestId("prompt-repeats").textContent).toBe("Atteint 2 fois");
    // The same prompt pushed again with more repeats stays on screen.
    await emitEvent(PROMPTS_EVENT, [samplePrompt(1, "warn", "le-chat"), samplePrompt(2, "block", "deepseek", 5)]);
    await waitFor(() => expect(screen.getByTestId("prompt-repeats").textContent).toBe("Atteint 5 fois"));
    await emitEvent(PROMPTS_EVENT, []);
    expect(await screen.findByText("Aucune alerte en attente.")).toBeTruthy();
  });

  it("two prompts for one service are two cards: what is typed in one stays there", async () => {
    const pasted: Prompt = {
      ...samplePrompt(21, "block", "deepseek"),
      clipboard: { detectors: [{ detector: "nir", count: 1 }], cleared: true },
    };
    setup([samplePrompt(20, "block", "deepseek"), pasted]);
    renderIn(<PromptView />);
    fireEvent.click(await screen.findByTestId("prompt-exception-toggle"));
    fireEvent.input(await screen.findByTestId("prompt-exception-text"), { target: { value: "Audit" } });
    fireEvent.click(screen.getByLabelText("Alerte suivante"));
    expect((await screen.findByText("2 / 2")) && screen.getByTestId("prompt-title").textContent).toBe(
      "Contenu sensible retiré du presse-papiers",
    );
    expect(screen.queryByTestId("prompt-exception-text")).toBeNull();
    expect(screen.queryByTestId("prompt-exception-send")).toBeNull();
  });

  it("shows command errors inline", async () => {
    setup([samplePrompt(8, "coach", "claude")], () => {
      throw commandError("bad-request", "justification too short");
    });
    renderIn(<PromptView />);
    const box = await screen.findByTestId("prompt-justification");
    fireEvent.input(box, { target: { value: "x".repeat(25) } });
    fireEvent.click(screen.getByTestId("prompt-continue"));
    expect((await screen.findByTestId("prompt-error")).textContent).toBe("Requête refusée : justification too short");
    expect(screen.getByTestId("prompt-title")).toBeTruthy();
  });

  it("says when the agent does not answer", async () => {
    installMock(async () => {
      throw commandError("not-connected", "connect: no such file");
    });
    renderIn(<PromptView />);
    expect((await screen.findByTestId("prompt-error")).textContent).toBe("L'agent Vigie ne répond pas");
  });
});
