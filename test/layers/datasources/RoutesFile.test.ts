import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, Logger } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as RoutesFile from "../../../src/layers/datasources/RoutesFile.ts"
import { RouteTable } from "../../../src/layers/RouteTable.ts"
import * as RouterCore from "../../../src/programs/RouterCore.ts"

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
})
