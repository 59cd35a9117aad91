/**
 * The NSQ aggregator against a stand-in nsqd speaking the real protocol (test/helpers/FakeNsqd.ts),
 * fed with the recorded Deis Workflow messages of test/fixtures/nsq.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Layer } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import * as LiveTails from "../../../src/layers/tails/LiveTails.ts"
import * as NsqConsumer from "../../../src/layers/inputs/NsqConsumer.ts"
import * as RecentLogs from "../../../src/layers/storage/RecentLogs.ts"
import * as TailFeed from "../../../src/layers/tails/TailFeed.ts"
import * as TailRoutes from "../../../src/layers/tails/TailRoutes.ts"
import * as TailSessions from "../../../src/layers/tails/TailSessions.ts"
import { Readiness } from "../../../src/layers/Readiness.ts"
import { waitUntil } from "../../helpers/DrainsHarness.ts"
import * as FakeNsqd from "../../helpers/FakeNsqd.ts"

const fixtures = readdirSync(join(import.meta.dirname, "../../fixtures/nsq")).filter((f) => f.endsWith(".json")).toSorted().map((f) =>
  JSON.parse(readFileSync(join(import.meta.dirname, "../../fixtures/nsq", f), "utf8")) as {
    body: unknown
    app?: string
    line?: string
  }
)
const bodyOf = (body: unknown) => typeof body === "string" ? body : JSON.stringify(body)

const appMessage = (i: number) =>
  JSON.stringify({
    log: `request ${i}\n`,
    stream: "stdout",
    time: "2016-05-31T01:34:43Z",
    kubernetes: { pod_name: "foo-v2-web-2ggow", container_name: "foo-web", labels: { app: "bar", type: "web", version: "v2" } }
  })

/** Live tails in this process, no routes written. */
const tails = LiveTails.layer().pipe(
  Layer.provideMerge(Layer.mergeAll(TailSessions.memory(), TailFeed.memory(), TailRoutes.local({ endpoint: undefined })))
)

describe("NSQ aggregator", () => {
  it.live("consumes the recorded messages: lines stored per app, unusable ones finished and counted, heartbeats answered, reconnects", () =>
    Effect.gen(function*() {
      const nsqd = yield* Effect.acquireRelease(Effect.promise(() => FakeNsqd.listen("logs", "consume")), (n) => Effect.promise(() => n.stop()))
      const context = yield* Layer.build(
        NsqConsumer.layer({ host: "127.0.0.1", port: nsqd.port, topic: "logs", channel: "consume", handlerCount: 4 }).pipe(
          Layer.provideMerge(tails),
          Layer.provideMerge(RecentLogs.memory(1000)),
          Layer.provideMerge(Readiness.layer)
        )
      )
      const recent = Context.get(context, RecentLogs.RecentLogs)
      for (const fixture of fixtures) nsqd.publish(bodyOf(fixture.body))
      for (let i = 0; i < 100; i++) nsqd.publish(appMessage(i))
      const total = fixtures.length + 100
      yield* waitUntil(() => nsqd.finished.length === total, Duration.seconds(10), () => `${nsqd.finished.length} of ${total} finished`)
      assert.deepStrictEqual(nsqd.commands.slice(0, 2), ["SUB logs consume", "RDY 4"])
      assert.deepStrictEqual(nsqd.requeued, [])

      const expected = new Map<string, Array<string>>()
      for (const f of fixtures) if (f.app !== undefined) expected.set(f.app, [...(expected.get(f.app) ?? []), f.line!])
      for (const [app, lines] of expected) assert.deepStrictEqual(yield* recent.read(app, 100), lines, app)
      const bar = (yield* recent.read("bar", 1000))!
      assert.deepStrictEqual(bar, Array.from({ length: 100 }, (_, i) => `2016-05-31T01:34:43+00:00 bar[web.v2.2ggow]: request ${i}`))

      nsqd.heartbeat()
      yield* waitUntil(() => nsqd.commands.includes("NOP"), Duration.seconds(5), () => "a NOP for the heartbeat")

      // The connection cut: the consumer connects again, subscribes, and goes on.
      nsqd.disconnect()
      yield* waitUntil(() => nsqd.connections() === 2 && nsqd.commands.filter((c) => c === "SUB logs consume").length === 2, Duration.seconds(10), () =>
        `${nsqd.connections()} connections`)
      nsqd.publish(appMessage(100))
      yield* waitUntil(() => nsqd.finished.length === total + 1, Duration.seconds(10), () => `${nsqd.finished.length}`)
      assert.strictEqual((yield* recent.read("bar", 1))![0], "2016-05-31T01:34:43+00:00 bar[web.v2.2ggow]: request 100")
    }))

  it.live("a storage error requeues the message, which is stored when it comes again", () =>
    Effect.gen(function*() {
      const nsqd = yield* Effect.acquireRelease(Effect.promise(() => FakeNsqd.listen("logs", "consume")), (n) => Effect.promise(() => n.stop()))
      let failures = 1
      const stored: Array<string> = []
      const flaky = Layer.succeed(RecentLogs.RecentLogs, RecentLogs.RecentLogs.of({
        adapter: "flaky",
        write: (lines) =>
          Effect.suspend(() => {
            if (failures-- > 0) return Effect.fail(new RecentLogs.StorageError({ adapter: "flaky", detail: "down" }))
            stored.push(...lines.map(([, line]) => line))
            return Effect.succeed(RecentLogs.written)
          }),
        read: () => Effect.succeed(undefined),
        destroy: () => Effect.void
      }))
      yield* Layer.build(
        NsqConsumer.layer({ host: "127.0.0.1", port: nsqd.port, topic: "logs", channel: "consume", handlerCount: 1 }).pipe(
          Layer.provideMerge(tails),
          Layer.provideMerge(flaky),
          Layer.provideMerge(Readiness.layer)
        )
      )
      const id = nsqd.publish(appMessage(1))
      yield* waitUntil(() => nsqd.finished.includes(id), Duration.seconds(10), () => `finished ${nsqd.finished}`)
      assert.deepStrictEqual(nsqd.requeued, [id])
      assert.deepStrictEqual(stored, ["2016-05-31T01:34:43+00:00 bar[web.v2.2ggow]: request 1"])
    }))
})
