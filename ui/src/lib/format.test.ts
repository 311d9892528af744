import { describe, expect, it } from "vitest";

import { formatDate, formatDateTime, formatMs, formatNumber, formatShortDateTime, formatTime, hashString, initial } from "./format";

const TS = Date.UTC(2026, 10, 27, 14, 5, 9) * 1000; // microseconds

describe("formatting per locale", () => {
  it("formats dates and times", () => {
    expect(formatDateTime(TS, "fr", "UTC")).toBe("27/11/2026 14:05:09");
    expect(formatDateTime(TS, "en", "UTC")).toBe("27/11/2026, 14:05:09");
    expect(formatTime(TS, "fr", "UTC")).toBe("14:05");
    expect(formatTime(TS, "en", "UTC")).toBe("14:05");
    expect(formatDate(TS, "fr", "UTC")).toBe("27 nov.");
    expect(formatDate(TS, "en", "UTC")).toBe("27 Nov");
    expect(formatShortDateTime(TS, "fr", "UTC")).toMatch(/^27 nov\.,? 14:05$/);
  });

  it("formats numbers and query times", () => {
    expect(formatNumber(1_000_000, "fr")).toMatch(/^1\s000\s000$/u);
    expect(formatNumber(1_000_000, "en")).toBe("1,000,000");
    expect(formatMs(3.14159, "fr")).toBe("3,1");
    expect(formatMs(3.14159, "en")).toBe("3.1");
    expect(formatMs(123.6, "en")).toBe("124");
  });

  it("makes avatar initials and stable colours", () => {
    expect(initial("ChatGPT")).toBe("C");
    expect(initial("  le Chat")).toBe("L");
    expect(initial("01.ai")).toBe("0");
    expect(initial("…")).toBe("?");
    expect(hashString("claude")).toBe(hashString("claude"));
    expect(hashString("claude")).not.toBe(hashString("chatgpt"));
  });
});
