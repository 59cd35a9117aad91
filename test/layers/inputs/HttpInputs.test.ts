import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import { PrometheusMetrics } from "effect/observability"
import type { LogPacket } from "../../../src/domain/LogPacket.ts"
import * as Rfc5424 from "../../../src/domain/syslog/Rfc5424.ts"
import * as HttpServer from "../../../src/layers/http/HttpServer.ts"
import { Ingest } from "../../../src/layers/routing/Ingest.ts"
import * as HttpEvents from "../../../src/layers/inputs/HttpEvents.ts"
import * as HttpSyslog from "../../../src/layers/inputs/HttpSyslog.ts"
import { Readiness } from "../../../src/layers/Readiness.ts"
import { freePort } from "../../helpers/ports.ts"

const octet = (line: string) => `${Buffer.byteLength(line)} ${line}`

/** The HTTP server with both HTTP inputs, and the packets they queue. */
const withServer = <A, E>(
  body: (post: Post, received: () => Array<LogPacket>, metrics: Effect.Effect<string>) => Effect.Effect<A, E>
) =>
  Effect.gen(function*() {
    const port = yield* Effect.promise(freePort)
    const routes = Layer.mergeAll(
      HttpSyslog.routes({ path: "/syslog", maxBodyBytes: 64 * 1024, maxMessageBytes: 4096 }),
      HttpEvents.routes({ path: "/events", maxBodyBytes: 64 * 1024 })
    )
    const server = HttpServer.layer({ host: "127.0.0.1", port }, routes)
    return yield* Effect.gen(function*() {
      const ingest = yield* Ingest
      const received: Array<LogPacket> = []
      yield* ingest.packets.pipe(Stream.runForEach((p) => Effect.sync(() => received.push(p))), Effect.forkScoped)
      return yield* body(poster(port), () => received, PrometheusMetrics.format())
    }).pipe(Effect.provide(Layer.provideMerge(server, Layer.mergeAll(Ingest.layer({ capacity: 1000 }), Readiness.layer))))
  })

type Post = (path: string, body: string, headers?: Record<string, string>) => Effect.Effect<{ status: number; text: string }>

const poster = (port: number): Post => (path, bodyText, headers = {}) =>
  Effect.promise(() =>
    fetch(`http://127.0.0.1:${port}${path}`, { method: "POST", body: bodyText, headers }).then(async (r) => ({
      status: r.status,
      text: (await r.text()).trim()
    }))
  )

const settle = Effect.sleep("50 millis")

describe("syslog over HTTP input", () => {
  it.live("takes newline-separated lines, keeping the good ones of a batch with a bad one", () =>
    withServer((post, received) =>
      Effect.gen(function*() {
        const reply = yield* post("/syslog", "<14>1 - a app - - - one\nnot syslog\n<13>Jan  1 00:00:00 b app: two\n")
        assert.deepStrictEqual(reply, { status: 200, text: "accepted 2 of 3; the first refused: MissingPriority: \"not syslog\"" })
        yield* settle
        assert.deepStrictEqual(received().map((p) => p.message), ["one", "two"])
        const bad = yield* post("/syslog", "only garbage\n")
        assert.strictEqual(bad.status, 400)
        assert.match(bad.text, /^no syslog line accepted: MissingPriority/)
      })))

  it.live("reads a logplex body of 3 frames as 3 packets, and a retried frame id once", () =>
    withServer((post, received) =>
      Effect.gen(function*() {
        const body = ["one", "two", "three"].map((m) => octet(`<190>1 2024-01-01T00:00:00.000000+00:00 host app web.1 - ${m}`)).join("")
        const headers = { "content-type": "application/logplex-1", "logplex-msg-count": "3", "logplex-frame-id": "frame-1" }
        assert.deepStrictEqual(yield* post("/syslog", body, headers), { status: 200, text: "accepted 3 of 3" })
        const again = yield* post("/syslog", body, headers)
        assert.deepStrictEqual(again, { status: 200, text: "frame frame-1 was already accepted; ignored" })
        yield* settle
        assert.deepStrictEqual(received().map((p) => p.message), ["one", "two", "three"])
      })))

  it.live("refuses a logplex body whose frame count is not Logplex-Msg-Count, taking nothing", () =>
    withServer((post, received) =>
      Effect.gen(function*() {
        const body = octet("<190>1 - host app - - - only one")
        const reply = yield* post("/syslog", body, { "content-type": "application/logplex-1", "logplex-msg-count": "2", "logplex-frame-id": "f2" })
        assert.deepStrictEqual(reply, { status: 400, text: "Logplex-Msg-Count is 2 but the body holds 1 frames" })
        yield* settle
        assert.strictEqual(received().length, 0)
        // Not recorded as accepted: the whole batch may come again.
        const retry = yield* post("/syslog", body, { "content-type": "application/logplex-1", "logplex-msg-count": "1", "logplex-frame-id": "f2" })
        assert.strictEqual(retry.status, 200)
      })))

  it.live("refuses a body over the limit with 413", () =>
    withServer((post) =>
      Effect.gen(function*() {
        const reply = yield* post("/syslog", `<14>1 - a app - - - ${"x".repeat(70 * 1024)}\n`)
        assert.strictEqual(reply.status, 413)
        assert.include(reply.text, "larger than 65536 bytes")
      })))
})

describe("HTTP events input", () => {
  it.live("takes the original's JSON packet, with field names in any case", () =>
    withServer((post, received) =>
      Effect.gen(function*() {
        const original = { Severity: 3, Facility: 16, Hostname: "api.default", Tag: "web", Time: "2024-01-02T03:04:05.678Z", Message: "boom" }
        assert.deepStrictEqual(yield* post("/events", JSON.stringify(original)), { status: 200, text: "accepted 1 of 1" })
        assert.deepStrictEqual(yield* post("/events", JSON.stringify({ hostname: "h", message: "lower" })), { status: 200, text: "accepted 1 of 1" })
        yield* settle
        const [first, second] = received()
        assert.deepStrictEqual(
          [first!.hostname, first!.tag, first!.message, first!.severity, first!.facility, first!.time.toISOString()],
          ["api.default", "web", "boom", 3, 16, "2024-01-02T03:04:05.678Z"]
        )
        assert.deepStrictEqual([second!.hostname, second!.message, second!.severity, second!.facility], ["h", "lower", 6, 1])
      })))

  it.live("says what is wrong with a bad packet, and keeps the good ones of an array", () =>
    withServer((post, received) =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* post("/events", "{nope"), {
          status: 400,
          text: "the body is not JSON: Expected property name or '}' in JSON at position 1 (line 1 column 2)"
        })
        assert.deepStrictEqual(yield* post("/events", JSON.stringify({ Message: "no host" })), {
          status: 400,
          text: "Hostname is required (a string)"
        })
        const mixed = yield* post("/events", JSON.stringify([{ Hostname: "a", Message: "ok" }, { Hostname: "b", Severity: 9 }]))
        assert.deepStrictEqual(mixed, { status: 200, text: "accepted 1 of 2; the first refused: packet 2: Severity must be an integer from 0 to 7" })
        yield* settle
        assert.deepStrictEqual(received().map((p) => p.message), ["ok"])
      })))

  it.live("puts the time of receipt in place of a Time RFC 5424 cannot write (not a four-digit year), and counts it", () =>
    withServer((post, received, metrics) =>
      Effect.gen(function*() {
        const before = Date.now()
        for (const time of ["+010000-01-01T00:00:00Z", "-000001-01-01T00:00:00Z", 8.64e15]) {
          assert.deepStrictEqual(yield* post("/events", JSON.stringify({ Hostname: "h", Message: String(time), Time: time })), {
            status: 200,
            text: "accepted 1 of 1"
          })
        }
        yield* settle
        for (const packet of received()) {
          assert.isAtLeast(packet.time.getTime(), before, `${packet.message}: the time of receipt`)
          assert.match(Rfc5424.format(packet), /^<14>1 \d{4}-\d\d-\d\dT/)
        }
        assert.match(yield* metrics, /logtrain_input_errors_total\{input="http_events",reason="time_out_of_range"\} 3/)
      })))
})
