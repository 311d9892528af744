import { cleanup } from "@testing-library/preact";
import { afterEach, beforeEach, expect, vi } from "vitest";

import { clearMocks } from "../ipc/testing";

// A test fails if the code under test logs an error or a warning.
let logged: unknown[][] = [];
beforeEach(() => {
  logged = [];
  vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => void logged.push(args));
  vi.spyOn(console, "warn").mockImplementation((...args: unknown[]) => void logged.push(args));
});

afterEach(() => {
  cleanup();
  clearMocks();
  localStorage.clear();
  location.hash = "";
  expect(logged, "console.error/warn calls").toEqual([]);
});
