/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// The console is loaded by Tauri from files (base "./"), under a strict CSP:
// no inline script or style ends up in dist/.
export default defineConfig({
  plugins: [preact()],
  base: "./",
  clearScreen: false,
  server: { host: "127.0.0.1", port: 5173, strictPort: true },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // No modulepreload polyfill: it would be an extra inline-able chunk, and
    // the Tauri webviews support modulepreload.
    modulePreload: { polyfill: false },
  },
  test: {
    environment: "jsdom",
    setupFiles: ["./src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
