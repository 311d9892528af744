import { useEffect, useMemo, useRef, useState } from "preact/hooks";

import { I18nContext, initialLocale, makeI18n, storeLocale, useI18n, type Locale } from "./i18n";
import { connectionStatus, onConnection } from "./ipc/commands";
import type { ConnectionStatus } from "./ipc/gen/ConnectionStatus";
import { subscription } from "./ipc/subscribe";
import { parseRoute, routeHash, type Route } from "./lib/route";
import { Tabs } from "./components/Tabs";
import { applyTheme, nextTheme, storeTheme, storedTheme, watchSystemTheme, type ThemeChoice } from "./theme";
import { ActivityView } from "./views/activity";
import { CatalogView } from "./views/catalog";
import { ChartsView } from "./views/charts";
import { EventsView } from "./views/events";
import { PolicyView } from "./views/policy";
import { PromptView } from "./views/prompt";
import { RulesView } from "./views/rules";
import { SecurityView, type SecurityPanels } from "./views/security";
import { FleetView } from "./views/fleet";
import { SoftwareView } from "./views/software";

// The security tabs' views are composed here, not in the security view, so
// that no view imports another.
export const SECURITY_PANELS: SecurityPanels = {
  events: (query) => <EventsView query={query} />,
  charts: (query) => <ChartsView query={query} />,
  software: () => <SoftwareView everyone />,
  fleet: () => <FleetView />,
  catalog: () => <CatalogView />,
  policy: () => <PolicyView />,
};

export function App() {
  const [locale, setLocaleState] = useState<Locale>(() => initialLocale());
  const [theme, setTheme] = useState<ThemeChoice>(() => storedTheme());
  const [route, setRoute] = useState<Route>(() => parseRoute(location.hash));

  useEffect(() => {
    const onHash = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);

  useEffect(() => {
    applyTheme(theme);
    return watchSystemTheme(() => applyTheme(theme));
  }, [theme]);

  useEffect(() => {
    document.documentElement.lang = locale;
  }, [locale]);

  const i18n = useMemo(
    () =>
      makeI18n(locale, (l) => {
        storeLocale(l);
        setLocaleState(l);
      }),
    [locale],
  );

  const navigate = (r: Route) => {
    const hash = routeHash(r);
    if (location.hash !== hash) location.hash = hash;
    setRoute(r);
  };

  return (
    <I18nContext.Provider value={i18n}>
      {route.view === "prompt" ? (
        <PromptView />
      ) : (
        <MainWindow
          route={route}
          navigate={navigate}
          theme={theme}
          onTheme={() => {
            const next = nextTheme(theme);
            storeTheme(next);
            setTheme(next);
          }}
        />
      )}
    </I18nContext.Provider>
  );
}

type Tab = "activity" | "rules" | "security";

function MainWindow({
  route,
  navigate,
  theme,
  onTheme,
}: {
  route: Exclude<Route, { view: "prompt" }>;
  navigate: (r: Route) => void;
  theme: ThemeChoice;
  onTheme: () => void;
}) {
  const { t } = useI18n();
  const [status, setStatus] = useState<ConnectionStatus | null>(null);
  // Bumped when the agent comes back after being unreachable: the views reload.
  const [epoch, setEpoch] = useState(0);
  const wasDown = useRef(false);
  useEffect(() => {
    if (!status) return;
    if (status.connected && wasDown.current) setEpoch((n) => n + 1);
    wasDown.current = !status.connected;
  }, [status?.connected]);

  useEffect(() => {
    let live = true;
    const unsubscribe = subscription(onConnection((s) => live && setStatus(s)));
    connectionStatus().then(
      (s) => live && setStatus(s),
      (err: unknown) =>
        live &&
        setStatus({ connected: false, socket: "", hello: null, error: err instanceof Error ? err.message : String((err as { message?: string })?.message ?? err) }),
    );
    return () => {
      live = false;
      unsubscribe();
    };
  }, []);

  const hello = status?.hello ?? null;
  const showSecurity = hello?.admin === true || route.view === "security";
  const tabs = [
    { id: "activity" as Tab, label: t("tabs.activity"), testid: "tab-activity" },
    { id: "rules" as Tab, label: t("tabs.rules"), testid: "tab-rules" },
    ...(showSecurity ? [{ id: "security" as Tab, label: t("tabs.security"), testid: "tab-security" }] : []),
  ];
  const selectTab = (id: Tab) =>
    navigate(id === "security" ? { view: "security", sub: route.view === "security" ? route.sub : "events" } : { view: id });

  return (
    <div class="app">
      <Header status={status} theme={theme} onTheme={onTheme} />
      <nav class="nav" aria-label={t("app.mainNav")}>
        <Tabs items={tabs} selected={route.view} onSelect={selectTab} label={t("app.mainNav")} idPrefix="main" />
      </nav>
      <main class="content">
        <div key={epoch} role="tabpanel" id={`main-panel-${route.view}`} aria-labelledby={`main-tab-${route.view}`}>
          {route.view === "activity" && <ActivityView software={(refresh) => <SoftwareView everyone={false} refresh={refresh} />} />}
          {route.view === "rules" && <RulesView />}
          {route.view === "security" && (
            <SecurityView sub={route.sub} onSub={(sub) => navigate({ view: "security", sub })} panels={SECURITY_PANELS} />
          )}
        </div>
      </main>
    </div>
  );
}

function Header({ status, theme, onTheme }: { status: ConnectionStatus | null; theme: ThemeChoice; onTheme: () => void }) {
  const { t, locale, setLocale } = useI18n();
  const hello = status?.hello ?? null;
  const state = status === null ? "connecting" : status.connected ? "connected" : "down";
  return (
    <header class="header">
      <div class="brand">
        <span class="brand-mark" aria-hidden="true" />
        <span class="brand-name">{t("app.name")}</span>
        <span class="brand-tagline">{t("app.tagline")}</span>
      </div>
      <div class={`conn conn-${state}`} data-testid="connection-state" role="status" title={status?.socket || undefined}>
        <span class="conn-dot" aria-hidden="true" />
        <span>{t(`connection.${state}`)}</span>
        {state === "down" && status?.error && <span class="conn-error">{status.error}</span>}
      </div>
      <span class="spacer" />
      {hello && (
        <span class="user">
          {hello.user ? t("header.user", { user: hello.user }) : t("header.userUnknown")}
          {hello.admin && <span class="chip">{t("header.admin")}</span>}
        </span>
      )}
      <div class="segmented" role="group" aria-label={t("header.language")}>
        {(["fr", "en"] as const).map((l) => (
          <button key={l} type="button" lang={l} aria-pressed={locale === l} class="seg" onClick={() => setLocale(l)}>
            {l.toUpperCase()}
          </button>
        ))}
      </div>
      <button type="button" class="btn btn-ghost btn-small" onClick={onTheme} title={t("header.theme")}>
        <span class={`theme-icon theme-${theme}`} aria-hidden="true" />
        {t(`header.theme.${theme}`)}
      </button>
    </header>
  );
}
