import { describe, expect, it } from "vitest";

import { MAX_SCROLL_HEIGHT, pagesFor, scrollTopForRow, virtualWindow } from "./virtual";

const base = { rowHeight: 32, viewport: 640, overscan: 5 };

describe("virtualWindow", () => {
  it("renders the visible rows plus overscan at the top", () => {
    const w = virtualWindow({ ...base, total: 1000, scrollTop: 0 });
    expect(w.scrollHeight).toBe(32_000);
    expect(w.scale).toBe(1);
    expect(w.start).toBe(0);
    expect(w.firstVisible).toBe(0);
    // 640 / 32 = 20 visible, +1 partial, +5 overscan below
    expect(w.end).toBe(26);
    expect(w.offset).toBe(0);
  });

  it("places rows at their natural position when the list is not scaled", () => {
    const w = virtualWindow({ ...base, total: 1000, scrollTop: 3200 + 10 });
    expect(w.firstVisible).toBe(100);
    expect(w.start).toBe(95);
    expect(w.offset).toBe(95 * 32);
  });

  it("handles an empty list and a list shorter than the viewport", () => {
    expect(virtualWindow({ ...base, total: 0, scrollTop: 50 })).toMatchObject({ start: 0, end: 0, scrollHeight: 0 });
    const w = virtualWindow({ ...base, total: 3, scrollTop: 100 });
    expect([w.start, w.end, w.offset]).toEqual([0, 3, 0]);
  });

  it("clamps a scroll position past the end", () => {
    const w = virtualWindow({ ...base, total: 100, scrollTop: 1e9 });
    expect(w.end).toBe(100);
    expect(w.firstVisible).toBe(100 - 20);
  });

  describe("1,000,000 rows", () => {
    const total = 1_000_000;
    const maxScroll = MAX_SCROLL_HEIGHT - base.viewport;

    it("caps the scroll height and scales", () => {
      const w = virtualWindow({ ...base, total, scrollTop: 0 });
      expect(w.scrollHeight).toBe(MAX_SCROLL_HEIGHT);
      expect(w.scale).toBeCloseTo(32_000_000 / MAX_SCROLL_HEIGHT);
      expect(w.end - w.start).toBeLessThanOrEqual(20 + 1 + 2 * 5);
    });

    it("reaches the last row exactly at the bottom", () => {
      const w = virtualWindow({ ...base, total, scrollTop: maxScroll });
      expect(w.end).toBe(total);
      expect(w.firstVisible).toBe(total - 20);
      // The last row ends at the bottom of the spacer.
      const lastTop = w.offset + (total - 1 - w.start) * 32;
      expect(lastTop + 32).toBeCloseTo(MAX_SCROLL_HEIGHT, 6);
    });

    it("maps the middle of the bar to the middle of the list, rows inside the viewport", () => {
      const scrollTop = maxScroll / 2;
      const w = virtualWindow({ ...base, total, scrollTop });
      expect(Math.abs(w.firstVisible - (total - 20) / 2)).toBeLessThanOrEqual(1);
      // The first visible row straddles the top of the viewport.
      const top = w.offset + (w.firstVisible - w.start) * 32;
      expect(top).toBeLessThanOrEqual(scrollTop);
      expect(top + 32).toBeGreaterThan(scrollTop);
      expect(w.end - w.start).toBeLessThanOrEqual(31);
    });

    it("scrollTopForRow brings any row into view", () => {
      for (const index of [0, 1, 19, 20, 12_345, 499_999, 999_980, 999_999]) {
        const scrollTop = scrollTopForRow(index, { ...base, total, scrollTop: 0 });
        const w = virtualWindow({ ...base, total, scrollTop });
        const top = w.offset + (index - w.start) * 32;
        expect(index).toBeGreaterThanOrEqual(w.start);
        expect(index).toBeLessThan(w.end);
        expect(top).toBeGreaterThanOrEqual(scrollTop - 1e-6);
        expect(top + 32).toBeLessThanOrEqual(scrollTop + base.viewport + 1e-6);
      }
    });
  });
});

describe("scrollTopForRow", () => {
  it("does not move when the row is already visible", () => {
    expect(scrollTopForRow(5, { ...base, total: 1000, scrollTop: 64 })).toBe(64);
  });
  it("moves the least to show a row below or above", () => {
    expect(scrollTopForRow(30, { ...base, total: 1000, scrollTop: 0 })).toBe(31 * 32 - 640);
    expect(scrollTopForRow(2, { ...base, total: 1000, scrollTop: 640 })).toBe(64);
  });
});

describe("pagesFor", () => {
  it("lists the pages a row range falls in", () => {
    expect(pagesFor(0, 30, 200)).toEqual([0]);
    expect(pagesFor(190, 230, 200)).toEqual([0, 1]);
    expect(pagesFor(400, 400, 200)).toEqual([]);
    expect(pagesFor(999_990, 1_000_000, 200)).toEqual([4999]);
  });
});
