// The just-in-time prompt window (#/prompt): what the employee sees when they
// reach a public GenAI service that the policy warns about, coaches or blocks.
import { useEffect, useRef, useState } from "preact/hooks";

import { ServiceAvatar } from "../components/ServiceAvatar";
import { useI18n, type Locale } from "../i18n";
import { answerPrompt, dismissPrompt, onPrompts, openAlternative, pendingPrompts } from "../ipc/commands";
import type { AnswerParams } from "../ipc/gen/AnswerParams";
import type { Prompt } from "../ipc/gen/Prompt";
import { subscription } from "../ipc/subscribe";
import { hideWindow } from "../ipc/window";
import { detectorLabel } from "../lib/clipboard";
import { kindLabel } from "../lib/software";
import { errorText } from "../lib/errors";
import { formatTime } from "../lib/format";

interface Confirmation {
  prompt: Prompt;
  text: string;
}

export function PromptView() {
  const i18n = useI18n();
  const { t } = i18n;
  const [prompts, setPrompts] = useState<Prompt[] | null>(null);
  const [currentId, setCurrentId] = useState<number | null>(null);
  const [confirmation, setConfirmation] = useState<Confirmation | null>(null);
  const [loadError, setLoadError] = useState<unknown>(undefined);

  useEffect(() => {
    let live = true;
    const unsubscribe = subscription(
      onPrompts((list) => {
        if (live) setPrompts(list);
      }),
    );
    pendingPrompts().then(
      // A push may have arrived first: it is newer, keep it.
      (list) => live && setPrompts((cur) => cur ?? list),
      (err: unknown) => live && setLoadError(err),
    );
    return () => {
      live = false;
      unsubscribe();
    };
  }, []);

  const list = prompts ?? [];
  let index = list.findIndex((p) => p.id === currentId);
  if (index < 0) index = 0;
  const prompt = list[index];

  // When a prompt's content is first on screen (after the frame is painted),
  // its id and the wall-clock time go on the root element: the end-to-end
  // test measures "DNS query → prompt visible" from it.
  const shownKey = prompt ? `${prompt.id}:${prompt.service_id}` : "";
  useEffect(() => {
    if (!shownKey) return;
    requestAnimationFrame(() => {
      document.documentElement.dataset.promptShown = shownKey;
      document.documentElement.dataset.promptShownAt = String(Date.now());
    });
  }, [shownKey]);

  // The shown prompt is followed by id (`currentId`, set by the pager); when
  // it leaves the list, or none was picked, the first one is shown.

  // A new prompt arriving while a confirmation is on screen takes its place.
  const seenIds = useRef<Set<number>>(new Set());
  useEffect(() => {
    const fresh = list.some((p) => !seenIds.current.has(p.id));
    list.forEach((p) => seenIds.current.add(p.id));
    if (fresh) setConfirmation(null);
  }, [list.map((p) => p.id).join(",")]);

  const removeLocally = (id: number) => setPrompts((cur) => (cur ? cur.filter((p) => p.id !== id) : cur));

  const closeConfirmation = () => {
    setConfirmation(null);
    if (list.length === 0) hideWindow();
  };

  // Escape with no prompt on screen (a confirmation, or nothing left) closes
  // as "Fermer" does. On a prompt, the card's own Escape is "Plus tard".
  const onEscape = useRef<(() => void) | null>(null);
  onEscape.current = confirmation ? closeConfirmation : prompt ? null : hideWindow;
  useEffect(() => {
    const onKeyDown = (e: KeyboardEvent) => {
      const close = onEscape.current;
      if (e.key === "Escape" && !e.defaultPrevented && close) {
        e.preventDefault();
        close();
      }
    };
    document.addEventListener("keydown", onKeyDown);
    return () => document.removeEventListener("keydown", onKeyDown);
  }, []);

  if (confirmation) {
    return (
      <main class="prompt-window" data-testid="prompt-window" aria-label={t("prompt.window")}>
        <PromptHeader />
        <div class="prompt-body prompt-done" data-testid="prompt-confirmation" role="status">
          <ServiceAvatar id={confirmation.prompt.service_id} name={confirmation.prompt.service_name} />
          <p class="prompt-confirm-text">{confirmation.text}</p>
          <AutoFocusButton class="btn btn-primary" onClick={closeConfirmation}>
            {t("app.close")}
          </AutoFocusButton>
        </div>
      </main>
    );
  }

  if (!prompt) {
    // Normally not seen: the window hides when its last prompt is answered.
    // Should it show, it can still be closed.
    return (
      <main class="prompt-window" data-testid="prompt-window" aria-label={t("prompt.window")}>
        <PromptHeader />
        <div class="prompt-body prompt-empty">
          {loadError !== undefined ? (
            <p class="error-text" role="alert" data-testid="prompt-error">
              {errorText(loadError, i18n)}
            </p>
          ) : (
            <p class="muted">{prompts === null ? t("app.loading") : t("prompt.empty")}</p>
          )}
          <button type="button" class="btn" data-testid="prompt-close" onClick={hideWindow}>
            {t("app.close")}
          </button>
        </div>
      </main>
    );
  }

  return (
    <main class="prompt-window" data-testid="prompt-window" aria-label={t("prompt.window")}>
      <PromptHeader
        pager={
          list.length > 1 ? (
            <Pager
              index={index}
              count={list.length}
              onMove={(i) => {
                const p = list[i];
                if (p) setCurrentId(p.id);
              }}
            />
          ) : null
        }
      />
      {/* One card per agent prompt: its id is stable while the agent counts repeats. */}
      <PromptCard
        key={prompt.id}
        prompt={prompt}
        onDone={(id, confirm) => {
          removeLocally(id);
          if (confirm) setConfirmation({ prompt, text: confirm });
        }}
      />
    </main>
  );
}

function PromptHeader({ pager }: { pager?: preact.ComponentChildren }) {
  const { t, locale, setLocale } = useI18n();
  const other: Locale = locale === "fr" ? "en" : "fr";
  return (
    <header class="prompt-header" data-tauri-drag-region>
      <span class="brand-mark" aria-hidden="true" />
      <span class="prompt-brand" data-tauri-drag-region>
        {t("app.name")}
      </span>
      <span class="spacer" data-tauri-drag-region />
      {pager}
      <button
        type="button"
        class="btn btn-ghost btn-small"
        lang={other}
        aria-label={`${t("header.language")} : ${other.toUpperCase()}`}
        onClick={() => setLocale(other)}
      >
        {other.toUpperCase()}
      </button>
    </header>
  );
}

function Pager({ index, count, onMove }: { index: number; count: number; onMove: (i: number) => void }) {
  const { t } = useI18n();
  return (
    <div class="pager" role="group" aria-label={t("prompt.position", { i: index + 1, n: count })}>
      <button
        type="button"
        class="btn btn-ghost btn-icon"
        aria-label={t("prompt.previous")}
        disabled={index === 0}
        onClick={() => onMove(index - 1)}
      >
        <span class="arrow-left" aria-hidden="true" />
      </button>
      <span class="pager-pos" aria-live="polite">
        {t("prompt.position", { i: index + 1, n: count })}
      </span>
      <button
        type="button"
        class="btn btn-ghost btn-icon"
        aria-label={t("prompt.next")}
        disabled={index >= count - 1}
        onClick={() => onMove(index + 1)}
      >
        <span class="arrow-right" aria-hidden="true" />
      </button>
    </div>
  );
}

function PromptCard({ prompt, onDone }: { prompt: Prompt; onDone: (id: number, confirmation: string | null) => void }) {
  const i18n = useI18n();
  const { t, locale } = i18n;
  const [justification, setJustification] = useState("");
  const [exceptionOpen, setExceptionOpen] = useState(false);
  const [exception, setException] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const first = useRef<HTMLElement | null>(null);
  const exceptionRef = useRef<HTMLTextAreaElement>(null);
  const alive = useRef(true);
  useEffect(
    () => () => {
      alive.current = false;
    },
    [],
  );

  // Focus the first control to act on when the prompt is shown.
  // Without scrolling: the service and headline stay in view above it.
  useEffect(() => {
    first.current?.focus({ preventScroll: true });
  }, [prompt.id]);
  useEffect(() => {
    if (exceptionOpen) exceptionRef.current?.focus();
  }, [exceptionOpen]);

  const min = prompt.min_justification_chars ?? 0;
  const trimmed = justification.trim().length;
  const service = prompt.service_name;

  const run = (action: () => Promise<string | null>) => {
    if (busy) return;
    setBusy(true);
    setError(undefined);
    action().then(
      (confirmation) => {
        if (!alive.current) return;
        setBusy(false);
        onDone(prompt.id, confirmation);
      },
      (err: unknown) => {
        if (!alive.current) return;
        setBusy(false);
        setError(err);
      },
    );
  };

  const answer = (params: Omit<AnswerParams, "prompt">) =>
    run(async () => {
      const answered = await answerPrompt({ prompt: prompt.id, ...params });
      switch (answered.kind) {
        case "justified":
          return answered.bypass_until !== null
            ? t("prompt.confirm.justified", { time: formatTime(answered.bypass_until, locale) })
            : t("prompt.confirm.acknowledged");
        case "exception-requested":
          return t("prompt.confirm.exception");
        default:
          return null;
      }
    });

  const later = () =>
    run(async () => {
      await dismissPrompt(prompt.id);
      return null;
    });

  const openAlt = () => {
    setError(undefined);
    openAlternative(prompt.id).catch((err: unknown) => alive.current && setError(err));
  };

  // Escape anywhere in the window is "Plus tard" — but not from a text the
  // user has started typing, which it would throw away.
  const laterRef = useRef(later);
  laterRef.current = later;
  useEffect(() => {
    const onKeyDown = (e: KeyboardEvent) => {
      const typing = e.target instanceof HTMLTextAreaElement && e.target.value.trim() !== "";
      if (e.key === "Escape" && !e.defaultPrevented && !typing) {
        e.preventDefault();
        laterRef.current();
      }
    };
    document.addEventListener("keydown", onKeyDown);
    return () => document.removeEventListener("keydown", onKeyDown);
  }, []);

  const reason = prompt.reason?.[locale];
  const program = prompt.program;
  const clipboard = prompt.clipboard;
  const software = prompt.software;
  const headline = clipboard
    ? t(prompt.action === "block" ? "prompt.clipboard.headline.block" : "prompt.clipboard.headline.warn", { service })
    : software
      ? t("prompt.software.headline", { name: software.version ? `${software.name} ${software.version}` : software.name, service })
      : t(`prompt.headline.${prompt.action === "allow" || prompt.action === "monitor" ? "warn" : prompt.action}`, {
        service,
      });
  const where = clipboard
    ? `${t("prompt.clipboard.where", { service })}${program ? ` · ${program}` : ""}`
    : software
      ? t("prompt.software.where", { kind: kindLabel(software.kind, { t }), host: software.host })
      : program
      ? t("prompt.reached", { program, name: prompt.name })
      : t("prompt.reachedNoProgram", { name: prompt.name });
  return (
    <div class={`prompt-body prompt-${prompt.action}`}>
      <div class="prompt-scroll">
        <div class="prompt-service" data-testid="prompt-service">
          <ServiceAvatar id={prompt.service_id} name={service} />
          <div>
            <div class="service-name">{service}</div>
            <div class="muted small">{prompt.vendor}</div>
          </div>
        </div>
        <h1 class="prompt-title" data-testid="prompt-title">
          {headline}
        </h1>
        <p class="prompt-message" data-testid="prompt-message">
          {prompt.message[locale]}
        </p>
        {clipboard && (
          <div class="prompt-clipboard" data-testid="prompt-clipboard">
            <p>{t("prompt.clipboard.found")}</p>
            <ul>
              {clipboard.detectors.map((d) => (
                <li key={d.detector} data-detector={d.detector}>
                  {t("prompt.clipboard.count", { label: detectorLabel(d.detector, { t }), n: d.count })}
                </li>
              ))}
            </ul>
            {clipboard.cleared && <p data-testid="prompt-clipboard-cleared">{t("prompt.clipboard.cleared")}</p>}
          </div>
        )}
        {software && (
          <p class="prompt-software" data-testid="prompt-software">
            {t(`prompt.software.change.${software.change}`)}
          </p>
        )}
        {reason && <p class="prompt-reason">{reason}</p>}
        <p class="prompt-r34">{t("prompt.r34")}</p>
        <p class="prompt-meta small muted">
          {where}{" "}
          · {t("prompt.at", { time: formatTime(prompt.ts, locale) })}
          {prompt.repeats > 1 && (
            <>
              {" · "}
              <span data-testid="prompt-repeats">{t("prompt.repeats", { n: prompt.repeats })}</span>
            </>
          )}
        </p>

        {prompt.action === "coach" && (
          <div class="field">
            <label for={`just-${prompt.id}`}>{t("prompt.justificationLabel")}</label>
            <textarea
              id={`just-${prompt.id}`}
              ref={(el) => {
                first.current = el;
              }}
              class="input"
              rows={2}
              maxLength={2000}
              data-testid="prompt-justification"
              aria-describedby={`just-count-${prompt.id}`}
              value={justification}
              onInput={(e) => setJustification(e.currentTarget.value)}
            />
            <div id={`just-count-${prompt.id}`} class={trimmed >= min ? "counter ok" : "counter"} aria-live="polite">
              {t("prompt.counter", { n: trimmed, min })}
            </div>
          </div>
        )}

        {prompt.action === "block" && exceptionOpen && (
          <div class="field">
            <label for={`exc-${prompt.id}`}>{t("prompt.exceptionLabel")}</label>
            <textarea
              id={`exc-${prompt.id}`}
              ref={exceptionRef}
              class="input"
              rows={2}
              maxLength={2000}
              data-testid="prompt-exception-text"
              value={exception}
              onInput={(e) => setException(e.currentTarget.value)}
            />
          </div>
        )}

        {error !== undefined && (
          <p class="error-text" role="alert" data-testid="prompt-error">
            {errorText(error, i18n)}
          </p>
        )}
      </div>

      <div class="prompt-actions">
        <button
          type="button"
          class="btn btn-primary"
          data-testid="prompt-alternative"
          ref={(el) => {
            if (prompt.action !== "coach") first.current = el;
          }}
          onClick={openAlt}
        >
          {t("prompt.openAlternative", { name: prompt.alternative.name })}
        </button>
        {prompt.action === "coach" && (
          <button
            type="button"
            class="btn"
            data-testid="prompt-continue"
            disabled={busy || trimmed < min}
            onClick={() => answer({ justification: justification.trim() })}
          >
            {t("prompt.continue")}
          </button>
        )}
        {prompt.action !== "coach" && (
          <button type="button" class="btn" data-testid="prompt-ack" disabled={busy} onClick={() => answer({})}>
            {t("prompt.ack")}
          </button>
        )}
        {/* An exception cannot bring back content that is gone from the clipboard. */}
        {prompt.action === "block" &&
          !clipboard &&
          (exceptionOpen ? (
            <button
              type="button"
              class="btn"
              data-testid="prompt-exception-send"
              disabled={busy || exception.trim().length === 0}
              onClick={() => answer({ exception: exception.trim() })}
            >
              {t("prompt.exceptionSend")}
            </button>
          ) : (
            <button type="button" class="btn" data-testid="prompt-exception-toggle" onClick={() => setExceptionOpen(true)}>
              {t("prompt.exceptionToggle")}
            </button>
          ))}
        <span class="spacer" />
        <button type="button" class="btn btn-ghost" data-testid="prompt-later" disabled={busy} onClick={later}>
          {t("prompt.later")}
        </button>
      </div>
    </div>
  );
}

function AutoFocusButton({ class: cls, onClick, children }: { class: string; onClick: () => void; children: preact.ComponentChildren }) {
  const ref = useRef<HTMLButtonElement>(null);
  useEffect(() => ref.current?.focus(), []);
  return (
    <button ref={ref} type="button" class={cls} onClick={onClick}>
      {children}
    </button>
  );
}
