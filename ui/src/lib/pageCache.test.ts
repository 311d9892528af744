import { describe, expect, it, vi } from "vitest";

import { LruCache, PagedLoader, type Page } from "./pageCache";

describe("LruCache", () => {
  it("evicts the least recently used entry", () => {
    const c = new LruCache<number, string>(2);
    c.set(1, "a");
    c.set(2, "b");
    expect(c.get(1)).toBe("a"); // 1 is now the most recent
    c.set(3, "c");
    expect(c.has(2)).toBe(false);
    expect(c.keys()).toEqual([1, 3]);
    c.peek(1); // peek does not refresh
    c.set(4, "d");
    expect(c.keys()).toEqual([3, 4]);
  });
  it("rejects a zero capacity", () => {
    expect(() => new LruCache(0)).toThrow(RangeError);
  });
});

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const page = (p: number, total = 1000, size = 10): Page<number> => ({
  total,
  rows: Array.from({ length: size }, (_, i) => p * size + i),
});

describe("PagedLoader", () => {
  it("fetches a page once while it is in flight, then serves rows from the cache", async () => {
    const d = deferred<Page<number>>();
    const fetcher = vi.fn(() => d.promise);
    const onChange = vi.fn();
    const l = new PagedLoader<number>(fetcher, 10, 4, onChange);
    const a = l.load(3);
    const b = l.load(3);
    expect(fetcher).toHaveBeenCalledTimes(1);
    expect(fetcher).toHaveBeenCalledWith(3, 10);
    expect(l.pending).toBe(1);
    expect(l.row(35)).toBeUndefined();
    d.resolve(page(3));
    await Promise.all([a, b]);
    expect(l.row(35)).toBe(35);
    expect(l.total).toBe(1000);
    expect(onChange).toHaveBeenCalledTimes(1);
    await l.load(3);
    expect(fetcher).toHaveBeenCalledTimes(1);
  });

  it("keeps at most `capacity` pages", async () => {
    const l = new PagedLoader<number>(async (p) => page(p), 10, 2);
    await l.load(0);
    await l.load(1);
    await l.load(2);
    expect(l.hasPage(0)).toBe(false);
    expect(l.hasPage(1) && l.hasPage(2)).toBe(true);
  });

  it("ignores answers for the selection before a reset", async () => {
    const old = deferred<Page<number>>();
    const onChange = vi.fn();
    const l = new PagedLoader<number>(() => old.promise, 10, 4, onChange);
    const stale = l.load(0);
    l.reset(async (p) => page(p, 42));
    await l.load(0);
    expect(l.total).toBe(42);
    old.resolve(page(0, 999_999));
    await stale;
    expect(l.total).toBe(42);
    expect(onChange).toHaveBeenCalledTimes(1);
    // A stale failure is ignored too.
    const old2 = deferred<Page<number>>();
    l.reset(() => old2.promise);
    const p = l.load(5);
    l.reset(async (n) => page(n, 7));
    old2.reject(new Error("late"));
    await p;
    expect(l.error).toBeUndefined();
  });

  it("records an error and lets the page be asked for again", async () => {
    let fail = true;
    const l = new PagedLoader<number>(async (p) => {
      if (fail) throw { kind: "internal", message: "boom" };
      return page(p);
    }, 10, 4);
    await l.load(0);
    expect(l.error).toEqual({ kind: "internal", message: "boom" });
    expect(l.pending).toBe(0);
    fail = false;
    await l.load(0);
    expect(l.error).toBeUndefined();
    expect(l.row(0)).toBe(0);
  });
});
