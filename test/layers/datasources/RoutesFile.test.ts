import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Logger } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as RoutesFile from "../../../src/layers/datasources/RoutesFile.ts"
import { RateLimits } from "../../../src/layers/routing/RateLimits.ts"
import { RouteTable } from "../../../src/layers/routing/RouteTable.ts"
import * as RouterCore from "../../../src/layers/routing/RouterCore.ts"

const sleep = (ms: number) => Effect.sleep(Duration.millis(ms))

describe("routes file", () => {
  it.live("warns once about a missing file, not at every poll and event, until it changes", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "logtrain-routes-"))
      const path = join(dir, "routes.json")
      writeFileSync(path, JSON.stringify({ "*": ["stdout://"] }))
      const logs: Array<string> = []
      const warnings = () => logs.filter((l) => l.includes("routes file not applied"))
      yield* Effect.gen(function*() {
        const table = yield* RouteTable
        rmSync(path)
        // Polled every 20 ms, and an event for each file written next to it: dozens of reloads.
        for (let i = 0; i < 20; i++) {
          writeFileSync(join(dir, `other-${i}`), "x")
          yield* sleep(25)
        }
        assert.strictEqual(warnings().length, 1, logs.join("\n"))
        assert.include(warnings()[0], "cannot read")
        // Its routes stay meanwhile.
        assert.isAbove(table.routes().length, 0)
        // Back, then gone again: that is news, once more.
        writeFileSync(path, JSON.stringify({ "*": ["stdout://"], "a.b": ["stdout://"] }))
        yield* sleep(200)
        rmSync(path)
        yield* sleep(300)
        assert.strictEqual(warnings().length, 2, logs.join("\n"))
      }).pipe(
        Effect.provide(
          RoutesFile.layerFile({ path, pollInterval: Duration.millis(20) }).pipe(
            Layer.provideMerge(RouterCore.layer({ ingestCapacity: 10, drainSettings: {} })),
            Layer.provide(Logger.layer([Logger.map(Logger.formatLogFmt, (line) => {
              logs.push(line)
            })]))
          )
        ),
        Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      )
    }))

  it.live("a hostname's settings: its drains and rate limit, which follow the file as it changes", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "logtrain-routes-"))
      const path = join(dir, "routes.json")
      const write = (json: unknown) => writeFileSync(path, JSON.stringify(json))
      write({ "*": ["stdout://"], "noisy.shop": { drains: ["stdout://?format=json"], "rate-limit": "500/s,burst=2000" }, "calm.shop": { "rate-limit": "10/s" } })
      yield* Effect.gen(function*() {
        const table = yield* RouteTable
        const limits = yield* RateLimits
        const limited = () => limits.offenders().map((app) => `${app.hostname} ${app.limit}`).toSorted()
        assert.deepStrictEqual(table.routes().map((r) => `${r.hostname} ${r.endpoint}`).toSorted(), ["* stdout://", "noisy.shop stdout://?format=json"])
        assert.deepStrictEqual(limited(), ["calm.shop 10/s,burst=10", "noisy.shop 500/s,burst=2000"])
        // Changed, and one taken away.
        write({ "*": ["stdout://"], "noisy.shop": { drains: "stdout://?format=json", "rate-limit": "100/s" } })
        yield* sleep(200)
        assert.deepStrictEqual(limited(), ["noisy.shop 100/s,burst=100"])
        // An unreadable limit is left out (warned about, counted); the rest of the file applies.
        write({ "*": ["stdout://"], "noisy.shop": { drains: "stdout://?format=json", "rate-limit": "lots" }, "calm.shop": { "rate-limit": "5/s" } })
        yield* sleep(200)
        assert.deepStrictEqual(limited(), ["calm.shop 5/s,burst=5"])
        assert.isFalse(limits.admit("calm.shop", 0, "network") && limits.admit("calm.shop", 0, "network") && limits.admit("calm.shop", 0, "network") &&
          limits.admit("calm.shop", 0, "network") && limits.admit("calm.shop", 0, "network") && limits.admit("calm.shop", 0, "network"))
      }).pipe(
        Effect.provide(
          RoutesFile.layerFile({ path, pollInterval: Duration.millis(20) }).pipe(
            Layer.provideMerge(RouterCore.layer({ ingestCapacity: 10, drainSettings: {} }))
          )
        ),
        Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      )
    }))
})
