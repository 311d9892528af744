import { describe, expect, it } from "vitest";

// Every visible string goes through the dictionaries: no words between JSX
// tags, and no literal labels, titles or placeholders in the components.
const sources = import.meta.glob(["../**/*.tsx", "!../**/*.test.tsx", "!../test/**"], {
  query: "?raw",
  import: "default",
  eager: true,
}) as Record<string, string>;

describe("no hard-coded text", () => {
  it("finds the sources", () => {
    expect(Object.keys(sources).length).toBeGreaterThan(10);
  });

  it.each(Object.keys(sources))("%s", (file) => {
    const src = sources[file]!;
    const text = [...src.matchAll(/(?<!=)>([^<>{}=;()\n]*\p{L}{2,}[^<>{}=;()\n]*)<\/?[\p{L}>]/gu)].map((m) => m[1]!.trim());
    const attrs = [...src.matchAll(/\b(aria-label|placeholder|title|label|alt)="([^"]*\p{L}[^"]*)"/gu)].map((m) => m[0]);
    expect([...text, ...attrs]).toEqual([]);
  });
});
