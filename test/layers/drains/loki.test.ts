/**
 * The Loki drain against the stand-in push endpoint (strict order, Loki's label rules): streams,
 * labels and metadata as documented, order within streams, and how Loki's answers are taken.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import * as DrainsHarness from "../../helpers/DrainsHarness.ts"
import * as FakeLoki from "../../helpers/FakeLoki.ts"

const fake = Effect.acquireRelease(Effect.promise(() => FakeLoki.listen()), (loki) => Effect.promise(() => loki.stop()))

const T0 = Date.UTC(2026, 0, 1)

const packet = (ms: number, fields: Partial<LogPacket.LogPacketFields> = {}) =>
  LogPacket.make({ time: new Date(T0 + ms), hostname: "web.shop", tag: "web-1", message: `at ${ms}`, ...fields })

const within = Duration.seconds(5)

describe("loki+http drain", () => {
  it.live("one stream per app by default, the other fields as structured metadata, with tenant and Basic auth", () =>
    Effect.gen(function*() {
      const loki = yield* fake
      const { close, drains } = yield* DrainsHarness.open()
      const drain = yield* drains.open(`loki+http://team:s3cret@127.0.0.1:${loki.port}?tenant=team-a`)
      const k8s = { namespace: "shop", pod: "web-1", container: "app" }
      drain.offer(packet(1, { severity: LogPacket.Severity.Warning, procId: "7", msgId: "M", structuredData: "[a b=\"c\"]", kubernetes: k8s }))
      drain.offer(packet(2, { tag: "web-2", facility: LogPacket.Facility.local4 }))
      drain.offer(packet(3, { hostname: "db.shop", severity: LogPacket.Severity.Emergency }))
      yield* DrainsHarness.waitUntil(() => drain.stats.sent === 3, within, () => JSON.stringify(drain.stats))
      assert.deepStrictEqual([...loki.streams.keys()].toSorted(), ["{app=\"db.shop\"}", "{app=\"web.shop\"}"])
      assert.deepStrictEqual(loki.streams.get("{app=\"web.shop\"}")!.entries, [
        {
          ns: `${T0 + 1}000000`,
          line: "at 1",
          metadata: { level: "warn", tag: "web-1", facility: "user", procid: "7", msgid: "M", structured_data: "[a b=\"c\"]", namespace: "shop", pod: "web-1", container: "app" }
        },
        { ns: `${T0 + 2}000000`, line: "at 2", metadata: { level: "info", tag: "web-2", facility: "local4" } }
      ])
      assert.deepStrictEqual(loki.streams.get("{app=\"db.shop\"}")!.entries[0]!.metadata, { level: "critical", tag: "web-1", facility: "user" })
      assert.isTrue(loki.requests.every((r) => r.tenant === "team-a"))
      assert.isTrue(loki.requests.every((r) => r.authorization === `Basic ${Buffer.from("team:s3cret").toString("base64")}`))
      yield* close
    }))

  it.live("makes labels of the fields ?labels= names, leaving out those without a value", () =>
    Effect.gen(function*() {
      const loki = yield* fake
      const { close, drains } = yield* DrainsHarness.open()
      const drain = yield* drains.open(`loki+http://127.0.0.1:${loki.port}?labels=level,namespace,container`)
      drain.offer(packet(1, { kubernetes: { namespace: "shop", pod: "web-1", container: "app" } }))
      drain.offer(packet(2, { severity: LogPacket.Severity.Error }))
      yield* DrainsHarness.waitUntil(() => drain.stats.sent === 2, within, () => JSON.stringify(drain.stats))
      assert.deepStrictEqual([...loki.streams.values()].map((s) => s.labels), [
        { app: "web.shop", level: "info", namespace: "shop", container: "app" },
        { app: "web.shop", level: "error" }
      ])
      assert.deepStrictEqual(loki.streams.get("{app=\"web.shop\", container=\"app\", level=\"info\", namespace=\"shop\"}")!.entries[0]!.metadata, {
        tag: "web-1",
        facility: "user",
        pod: "web-1"
      }, "a field made a label is not repeated as metadata")
      yield* close
    }))

  it.live("sorts a stream's entries by time, and keeps lines of the same millisecond apart and in order", () =>
    Effect.gen(function*() {
      const loki = yield* fake
      const { close, drains } = yield* DrainsHarness.open({ ...DrainsHarness.testSettings, batchSize: 100 })
      const drain = yield* drains.open(`loki+http://127.0.0.1:${loki.port}`)
      // Two sources of one app, their clocks apart: arrival order is not time order.
      for (const ms of [5, 3, 9, 3, 3, 1]) drain.offer(packet(ms, { message: ms === 3 ? "same line" : `at ${ms}` }))
      yield* DrainsHarness.waitUntil(() => drain.stats.sent === 6, within, () => JSON.stringify(drain.stats))
      // A later batch within the last millisecond of the first continues its count.
      drain.offer(packet(9, { message: "at 9" }))
      yield* DrainsHarness.waitUntil(() => drain.stats.sent === 7, within, () => JSON.stringify(drain.stats))
      const entries = loki.streams.get("{app=\"web.shop\"}")!.entries
      assert.deepStrictEqual(entries.map((e) => [e.ns, e.line]), [
        [`${T0 + 1}000000`, "at 1"],
        [`${T0 + 3}000000`, "same line"],
        [`${T0 + 3}000001`, "same line"],
        [`${T0 + 3}000002`, "same line"],
        [`${T0 + 5}000000`, "at 5"],
        [`${T0 + 9}000000`, "at 9"],
        [`${T0 + 9}000001`, "at 9"]
      ])
      assert.strictEqual(drain.stats.dropped.rejected, 0)
      yield* close
    }))

  it.live("counts what Loki ignores as out of order — only those — by Loki's reason", () =>
    Effect.gen(function*() {
      const loki = yield* fake
      const { close, drains } = yield* DrainsHarness.open({ ...DrainsHarness.testSettings, batchSize: 100 })
      const drain = yield* drains.open(`loki+http://127.0.0.1:${loki.port}`)
      drain.offer(packet(100))
      yield* DrainsHarness.waitUntil(() => drain.stats.sent === 1, within, () => JSON.stringify(drain.stats))
      // Two entries older than the stream's newest, one newer.
      drain.offer(packet(50))
      drain.offer(packet(60))
      drain.offer(packet(200))
      yield* DrainsHarness.waitUntil(() => drain.stats.sent + drain.stats.dropped.rejected === 4, within, () => JSON.stringify(drain.stats))
      assert.deepStrictEqual([drain.stats.sent, drain.stats.dropped.rejected, drain.stats.retries], [2, 2, 0])
      assert.deepStrictEqual(loki.lines(), ["at 100", "at 200"])
      assert.deepStrictEqual(loki.requests.map((r) => r.status), [204, 400])
      assert.match(yield* PrometheusMetrics.format(), /logtrain_drain_rejected_total\{[^}]*reason="out_of_order"[^}]*\} 2/)
      yield* close
    }))

  it.live("puts the fields in the line as logfmt with ?metadata=line, for a Loki without structured metadata", () =>
    Effect.gen(function*() {
      const loki = yield* fake
      loki.allowStructuredMetadata = false
      const { close, drains } = yield* DrainsHarness.open()
      const line = yield* drains.open(`loki+http://127.0.0.1:${loki.port}?metadata=line`)
      line.offer(packet(1, { message: "say \"hi\"\nbye", procId: "9" }))
      yield* DrainsHarness.waitUntil(() => line.stats.sent === 1, within, () => JSON.stringify(line.stats))
      assert.deepStrictEqual(loki.lines(), ["level=info tag=web-1 facility=user procid=9 msg=\"say \\\"hi\\\"\\nbye\""])
      // The default (structured metadata) against that Loki: refused for good, counted by its reason.
      const structured = yield* drains.open(`loki+http://127.0.0.1:${loki.port}`)
      structured.offer(packet(2))
      yield* DrainsHarness.waitUntil(() => structured.stats.dropped.rejected === 1, within, () => JSON.stringify(structured.stats))
      assert.match(yield* PrometheusMetrics.format(), /logtrain_drain_rejected_total\{[^}]*reason="disallowed_structured_metadata"[^}]*\} 1/)
      yield* close
    }))

  it.live("retries 429 (after Retry-After) and 5xx, drops another 4xx, gzips a large batch", () =>
    Effect.gen(function*() {
      const loki = yield* fake
      const { close, drains } = yield* DrainsHarness.open({ ...DrainsHarness.testSettings, batchSize: 1000, retryMaxDelay: Duration.seconds(5) })
      const drain = yield* drains.open(`loki+http://127.0.0.1:${loki.port}`)
      loki.status = 429
      loki.retryAfter = "1"
      for (let i = 0; i < 300; i++) drain.offer(packet(i))
      yield* DrainsHarness.waitUntil(() => loki.requests.length >= 1, within, () => "first attempt")
      const firstAt = Date.now()
      loki.status = 503
      loki.retryAfter = undefined
      yield* DrainsHarness.waitUntil(() => loki.requests.length >= 2, within, () => "second attempt")
      assert.isAtLeast(Date.now() - firstAt, 900, "waited as Retry-After: 1 asked")
      loki.status = 204
      yield* DrainsHarness.waitUntil(() => drain.stats.sent === 300, within, () => JSON.stringify(drain.stats))
      assert.deepStrictEqual(loki.requests.map((r) => r.status).slice(0, 2), [429, 503])
      assert.isTrue(loki.requests.at(-1)!.gzip, "a batch over 4 KiB goes gzipped")
      loki.status = 404
      drain.offer(packet(1000))
      yield* DrainsHarness.waitUntil(() => drain.stats.dropped.rejected === 1, within, () => JSON.stringify(drain.stats))
      assert.match(yield* PrometheusMetrics.format(), /logtrain_drain_rejected_total\{[^}]*reason="http_404"[^}]*\} 1/)
      yield* close
    }))
})
