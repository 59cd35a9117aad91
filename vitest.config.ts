import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // RFC 3164 timestamps are read in the process's zone; tests pin it.
    env: { TZ: "UTC" },
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
