/**
 * The Loki drain reads Loki's whole 400 answer: it counts what was ignored from the answer's
 * `total ignored: N out of M` lines, one per failing stream, so an answer cut short (the HTTP
 * transport used to keep 4 KiB of every answer) counts only the first streams' and takes the
 * others' ignored entries as delivered.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import * as DrainsHarness from "../../helpers/DrainsHarness.ts"
import * as FakeLoki from "../../helpers/FakeLoki.ts"

const T0 = Date.UTC(2026, 0, 1)
const packet = (ms: number, tag: string) =>
  LogPacket.make({ time: new Date(T0 + ms), hostname: "web.shop", tag, message: `${tag} at ${ms}` })

describe("loki+http drain answers", () => {
  it.live("counts every stream's ignored entries when Loki's answer is long (40 streams out of order)", () =>
    Effect.gen(function*() {
      const loki = yield* Effect.acquireRelease(Effect.promise(() => FakeLoki.listen()), (l) => Effect.promise(() => l.stop()))
      const { close, drains } = yield* DrainsHarness.open({ ...DrainsHarness.testSettings, batchSize: 1000, maxWorkers: 1 })
      // `tag` as a label: one stream per tag.
      const drain = yield* drains.open(`loki+http://127.0.0.1:${loki.port}?labels=tag`)
      const tags = Array.from({ length: 40 }, (_, i) => `worker-${i}`)
      for (const tag of tags) drain.offer(packet(1000, tag))
      yield* DrainsHarness.waitUntil(() => drain.stats.sent === 40, Duration.seconds(5), () => JSON.stringify(drain.stats))
      // Per stream: two entries older than its newest (ignored), one newer (kept).
      for (const tag of tags) {
        drain.offer(packet(10, tag))
        drain.offer(packet(20, tag))
        drain.offer(packet(2000, tag))
      }
      yield* DrainsHarness.waitUntil(() => drain.stats.sent + drain.stats.dropped.rejected === 160, Duration.seconds(5), () => JSON.stringify(drain.stats))
      const answer = loki.requests.at(-1)!
      assert.strictEqual(answer.status, 400)
      assert.strictEqual(loki.lines().length, 80)
      assert.deepStrictEqual([drain.stats.sent, drain.stats.dropped.rejected], [80, 80])
      yield* close
    }))
})
