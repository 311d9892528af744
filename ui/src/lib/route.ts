// The view is chosen from location.hash: #/prompt, #/activity, #/rules,
// #/security/{events,charts,software,fleet,catalog,policy} (#/events etc. are accepted too).
export type SecurityView = "events" | "charts" | "software" | "fleet" | "catalog" | "policy";
export type Route =
  | { view: "prompt" }
  | { view: "activity" }
  | { view: "rules" }
  | { view: "security"; sub: SecurityView };

const SECURITY: readonly SecurityView[] = ["events", "charts", "software", "fleet", "catalog", "policy"];

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split(/[/?]/).filter(Boolean);
  const [a, b] = parts;
  if (a === "prompt") return { view: "prompt" };
  if (a === "rules") return { view: "rules" };
  if (a === "security") {
    return { view: "security", sub: SECURITY.includes(b as SecurityView) ? (b as SecurityView) : "events" };
  }
  if (SECURITY.includes(a as SecurityView)) return { view: "security", sub: a as SecurityView };
  return { view: "activity" };
}

export function routeHash(route: Route): string {
  return route.view === "security" ? `#/security/${route.sub}` : `#/${route.view}`;
}
