/**
 * The OTLP drain against the stand-in receiver: what arrives, and how each answer the OTLP spec
 * defines is taken.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import * as DrainsHarness from "../../helpers/DrainsHarness.ts"
import * as OtlpReceiver from "../../helpers/OtlpReceiver.ts"

const receiver = Effect.acquireRelease(Effect.promise(() => OtlpReceiver.listen()), (r) => Effect.promise(() => r.stop()))

const packet = (i: number, fields: Partial<LogPacket.LogPacketFields> = {}) =>
  LogPacket.make({ time: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, i)), hostname: "app.ns", tag: "app-1", message: `message ${i}`, ...fields })

const within = Duration.seconds(5)

describe("otlp+http drain", () => {
  it.live("sends every field of a packet, grouped by resource, with Basic auth", () =>
    Effect.gen(function*() {
      const r = yield* receiver
      const { close, drains } = yield* DrainsHarness.open()
      const drain = yield* drains.open(`otlp+http://collector:s3cret@127.0.0.1:${r.port}`)
      const k8s = { namespace: "ns", pod: "app-7c-x1", container: "web" }
      drain.offer(packet(1, {
        severity: LogPacket.Severity.Critical,
        facility: LogPacket.Facility.local0,
        procId: "12",
        msgId: "REQ",
        structuredData: "[x@1 a=\"b\"]",
        kubernetes: k8s
      }))
      drain.offer(packet(2, { hostname: "other", tag: "" }))
      yield* DrainsHarness.waitUntil(() => r.records().length === 2, within, () => `${r.records().length}/2`)
      const [first, second] = r.records()
      assert.deepStrictEqual(first, {
        resource: { "host.name": "app.ns", "k8s.namespace.name": "ns", "k8s.pod.name": "app-7c-x1", "k8s.container.name": "web" },
        scope: "logtrain",
        timeUnixNano: String(Date.UTC(2026, 0, 1, 0, 0, 0, 1) * 1e6),
        observedTimeUnixNano: first!.observedTimeUnixNano,
        severityNumber: 18,
        severityText: "crit",
        body: "message 1",
        attributes: {
          "syslog.facility": 16,
          "syslog.appname": "app-1",
          "syslog.procid": "12",
          "syslog.msgid": "REQ",
          "syslog.structured_data": "[x@1 a=\"b\"]"
        }
      })
      const observed = BigInt(first!.observedTimeUnixNano!) / 1_000_000n
      assert.isTrue(Math.abs(Number(observed) - Date.now()) < 10_000, "observed: when it was sent")
      assert.deepStrictEqual(second!.resource, { "host.name": "other" })
      assert.deepStrictEqual(second!.attributes, { "syslog.facility": 1 })
      const request = r.requests[0]!
      assert.strictEqual(request.headers["content-type"], "application/x-protobuf")
      assert.strictEqual(request.headers.authorization, `Basic ${Buffer.from("collector:s3cret").toString("base64")}`)
      assert.strictEqual(request.path, "/v1/logs")
      yield* close
    }))

  it.live("sends JSON with ?encoding=json, and gzips a large batch unless told not to", () =>
    Effect.gen(function*() {
      const r = yield* receiver
      const { close, drains } = yield* DrainsHarness.open({ ...DrainsHarness.testSettings, batchSize: 500 })
      const json = yield* drains.open(`otlp+http://127.0.0.1:${r.port}?encoding=json`)
      for (let i = 0; i < 200; i++) json.offer(packet(i))
      yield* DrainsHarness.waitUntil(() => r.records().length === 200, within, () => `${r.records().length}/200`)
      assert.isTrue(r.requests.every((q) => q.encoding === "json" && q.headers["content-type"] === "application/json"))
      assert.isTrue(r.requests.some((q) => q.headers["content-encoding"] === "gzip"))
      assert.deepStrictEqual(r.records().map((x) => x.body), Array.from({ length: 200 }, (_, i) => `message ${i}`))
      const plain = yield* drains.open(`otlp+http://127.0.0.1:${r.port}?compression=none`)
      for (let i = 0; i < 200; i++) plain.offer(packet(i))
      yield* DrainsHarness.waitUntil(() => r.records().length === 400, within, () => `${r.records().length}/400`)
      assert.isTrue(r.requests.slice(-1).every((q) => q.encoding === "protobuf" && q.headers["content-encoding"] === undefined))
      yield* close
    }))

  it.live("counts the records a partial success rejects, and the rest as sent", () =>
    Effect.gen(function*() {
      const r = yield* receiver
      r.rejectPerRequest = 3
      const { close, drains } = yield* DrainsHarness.open()
      const drain = yield* drains.open(`otlp+http://127.0.0.1:${r.port}`)
      for (let i = 0; i < 10; i++) drain.offer(packet(i))
      yield* DrainsHarness.waitUntil(() => drain.stats.sent + drain.stats.dropped.rejected === 10, within, () => JSON.stringify(drain.stats))
      assert.strictEqual(drain.stats.dropped.rejected, 3)
      assert.strictEqual(drain.stats.sent, 7)
      assert.strictEqual(drain.stats.retries, 0, "a partial success is never retried")
      const metrics = yield* PrometheusMetrics.format()
      assert.match(metrics, /logtrain_drain_rejected_total\{[^}]*reason="partial_success"[^}]*\} 3/)
      yield* close
    }))

  it.live("retries 429, 502, 503 and 504, after the Retry-After asked for", () =>
    Effect.gen(function*() {
      const r = yield* receiver
      const statuses = [429, 502, 503, 504]
      r.answer = (attempt) => attempt < statuses.length ? { status: statuses[attempt]!, retryAfter: attempt === 0 ? "1" : undefined } : undefined
      const { close, drains } = yield* DrainsHarness.open({ ...DrainsHarness.testSettings, retryMaxDelay: Duration.seconds(5) })
      const drain = yield* drains.open(`otlp+http://127.0.0.1:${r.port}`)
      drain.offer(packet(0))
      // The receiver holds the batch a moment before the drain reads the answer that counts it as sent.
      yield* DrainsHarness.waitUntil(() => drain.stats.sent === 1, Duration.seconds(10), () => JSON.stringify(r.attempts))
      assert.deepStrictEqual(r.attempts.map((a) => a.status), [...statuses, 200])
      assert.isAtLeast(r.attempts[1]!.at - r.attempts[0]!.at, 1000, "waited as Retry-After: 1 asked")
      assert.strictEqual(drain.stats.sent, 1)
      assert.strictEqual(drain.stats.retries, 4)
      yield* close
    }))

  it.live("waits for a Retry-After no longer than DRAIN_RETRY_MAX_DELAY", () =>
    Effect.gen(function*() {
      const r = yield* receiver
      r.answer = (attempt) => attempt === 0 ? { status: 503, retryAfter: "3600" } : undefined
      const { close, drains } = yield* DrainsHarness.open({ ...DrainsHarness.testSettings, retryMaxDelay: Duration.millis(300) })
      const drain = yield* drains.open(`otlp+http://127.0.0.1:${r.port}`)
      drain.offer(packet(0))
      yield* DrainsHarness.waitUntil(() => r.records().length === 1, within, () => JSON.stringify(r.attempts))
      yield* close
      assert.strictEqual(drain.stats.sent, 1)
    }))

  it.live("drops and counts what other statuses refuse — 400 and 500 alike, as the spec says — and goes on", () =>
    Effect.gen(function*() {
      const r = yield* receiver
      const { close, drains, logs } = yield* DrainsHarness.open()
      const drain = yield* drains.open(`otlp+http://127.0.0.1:${r.port}`)
      r.answer = { status: 400, message: "bad data on purpose" }
      drain.offer(packet(0))
      yield* DrainsHarness.waitUntil(() => drain.stats.dropped.rejected === 1, within, () => JSON.stringify(drain.stats))
      r.answer = { status: 500, message: "internal" }
      drain.offer(packet(1))
      yield* DrainsHarness.waitUntil(() => drain.stats.dropped.rejected === 2, within, () => JSON.stringify(drain.stats))
      r.answer = undefined
      drain.offer(packet(2))
      yield* DrainsHarness.waitUntil(() => r.records().length === 1, within, () => JSON.stringify(r.attempts))
      assert.deepStrictEqual(r.attempts.map((a) => a.status), [400, 500, 200])
      assert.strictEqual(drain.stats.retries, 0)
      const metrics = yield* PrometheusMetrics.format()
      assert.match(metrics, /logtrain_drain_rejected_total\{[^}]*reason="http_400"[^}]*\} 1/)
      assert.match(metrics, /logtrain_drain_rejected_total\{[^}]*reason="http_500"[^}]*\} 1/)
      yield* close
      assert.isTrue(logs.some((line) => line.includes("bad data on purpose")), "the Status message is logged")
    }))
})
