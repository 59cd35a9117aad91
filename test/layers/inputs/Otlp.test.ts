/**
 * The OTLP/HTTP logs input on the real HTTP server: requests encoded by the official definitions
 * (protobufjs), answers decoded by them.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, type Scope, Stream } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { Buffer } from "node:buffer"
import { gzipSync } from "node:zlib"
import type { LogPacket } from "../../../src/domain/LogPacket.ts"
import * as HttpServer from "../../../src/layers/http/HttpServer.ts"
import { Ingest } from "../../../src/layers/routing/Ingest.ts"
import * as Otlp from "../../../src/layers/inputs/Otlp.ts"
import { Readiness } from "../../../src/layers/Readiness.ts"
import * as OtlpReceiver from "../../helpers/OtlpReceiver.ts"
import { freePort } from "../../helpers/ports.ts"

interface Reply {
  readonly status: number
  readonly contentType: string
  readonly retryAfter: string | null
  readonly body: Buffer
}

type Post = (body: Uint8Array | string, headers?: Record<string, string>) => Effect.Effect<Reply>

/** The HTTP server with the OTLP input; `consume` starts taking packets off the queue to the router. */
const withServer = <A, E>(
  capacity: number,
  body: (post: Post, received: () => Array<LogPacket>, consume: Effect.Effect<void, never, Scope.Scope>) => Effect.Effect<A, E, Scope.Scope>
) =>
  Effect.gen(function*() {
    const port = yield* Effect.promise(freePort)
    const routes = Otlp.routes({ path: Otlp.PATH, maxBodyBytes: 64 * 1024, maxMessageBytes: 1024, akkeris: false })
    const server = HttpServer.layer({ host: "127.0.0.1", port }, routes)
    return yield* Effect.gen(function*() {
      const ingest = yield* Ingest
      const received: Array<LogPacket> = []
      const consume = ingest.packets.pipe(Stream.runForEach((p) => Effect.sync(() => received.push(p))), Effect.forkScoped, Effect.asVoid)
      return yield* body(poster(port), () => received, consume)
    }).pipe(Effect.provide(Layer.provideMerge(server, Layer.mergeAll(Ingest.layer({ capacity }), Readiness.layer))))
  })

const poster = (port: number): Post => (body, headers = {}) =>
  Effect.promise(() =>
    fetch(`http://127.0.0.1:${port}/v1/logs`, {
      method: "POST",
      body: typeof body === "string" ? body : Buffer.from(body),
      headers: { "content-type": "application/x-protobuf", ...headers }
    }).then(async (r) => ({
      status: r.status,
      contentType: r.headers.get("content-type") ?? "",
      retryAfter: r.headers.get("retry-after"),
      body: Buffer.from(await r.arrayBuffer())
    }))
  )

const s = (stringValue: string) => ({ stringValue })
const kv = (key: string, value: Record<string, unknown>) => ({ key, value })

const request = (records: ReadonlyArray<Record<string, unknown>>, resource: ReadonlyArray<ReturnType<typeof kv>> = [kv("service.name", s("api")), kv("k8s.namespace.name", s("prod"))]) => ({
  resourceLogs: [{ resource: { attributes: resource }, scopeLogs: [{ scope: { name: "app" }, logRecords: records }] }]
})

const protobuf = (message: Record<string, unknown>): Uint8Array =>
  OtlpReceiver.ExportLogsServiceRequest.encode(OtlpReceiver.ExportLogsServiceRequest.fromObject(message)).finish()

/** A protobuf request of records with these bodies. */
const records = (...bodies: Array<string>) => protobuf(request(bodies.map((b) => ({ body: s(b) }))))

const response = (reply: Reply) =>
  OtlpReceiver.ExportLogsServiceResponse.toObject(OtlpReceiver.ExportLogsServiceResponse.decode(reply.body), OtlpReceiver.toObjectOptions)

const status = (reply: Reply) => OtlpReceiver.Status.toObject(OtlpReceiver.Status.decode(reply.body)) as { code?: number; message?: string }

const settle = Effect.sleep("50 millis")

describe("OTLP/HTTP logs input", () => {
  it.live("takes a protobuf request and answers an empty ExportLogsServiceResponse", () =>
    withServer(1000, (post, received, consume) =>
      Effect.gen(function*() {
        yield* consume
        const reply = yield* post(protobuf(request([
          { timeUnixNano: "1772600000123000000", severityNumber: 13, body: s("first") },
          { severityText: "error", body: s("second") }
        ])))
        assert.strictEqual(reply.status, 200)
        assert.strictEqual(reply.contentType, "application/x-protobuf")
        assert.deepStrictEqual(response(reply), {})
        yield* settle
        assert.deepStrictEqual(received().map((p) => [p.hostname, p.tag, p.message, p.severity]), [
          ["api.prod", "api", "first", 4],
          ["api.prod", "api", "second", 3]
        ])
        assert.strictEqual(received()[0]!.time.getTime(), 1772600000123)
      })))

  it.live("takes OTLP/JSON and gzip, and answers in the request's encoding", () =>
    withServer(1000, (post, received, consume) =>
      Effect.gen(function*() {
        yield* consume
        const json = yield* post(JSON.stringify(request([{ body: s("json") }])), { "content-type": "application/json; charset=utf-8" })
        assert.deepStrictEqual([json.status, json.contentType, json.body.toString()], [200, "application/json", "{}"])
        const gz = yield* post(gzipSync(protobuf(request([{ body: s("gzipped") }]))), { "content-encoding": "gzip" })
        assert.strictEqual(gz.status, 200)
        yield* settle
        assert.deepStrictEqual(received().map((p) => p.message), ["json", "gzipped"])
      })))

  it.live("answers a malformed body 400 with a Status, takes nothing of it, and goes on", () =>
    withServer(1000, (post, received, consume) =>
      Effect.gen(function*() {
        yield* consume
        const good = protobuf(request([{ body: s("kept") }]))
        const bad = yield* post(good.slice(0, good.length - 2))
        assert.strictEqual(bad.status, 400)
        assert.strictEqual(bad.contentType, "application/x-protobuf")
        assert.strictEqual(status(bad).code, 3)
        assert.match(status(bad).message!, /^not an OTLP logs request \(protobuf\): truncated/)
        const badJson = yield* post("{\"resourceLogs\": 7}", { "content-type": "application/json" })
        assert.strictEqual(badJson.status, 400)
        assert.match(JSON.parse(badJson.body.toString()).message, /resourceLogs is not an array/)
        const notGzip = yield* post(good, { "content-encoding": "gzip" })
        assert.strictEqual(notGzip.status, 400)
        assert.strictEqual((yield* post(good)).status, 200)
        yield* settle
        assert.deepStrictEqual(received().map((p) => p.message), ["kept"])
        const metrics = yield* PrometheusMetrics.format()
        assert.match(metrics, /logtrain_input_errors_total\{[^}]*input="otlp"[^}]*reason="malformed"[^}]*\} 3/)
      })))

  it.live("rejects a broken record alone with a partial success, and warns of cut messages", () =>
    withServer(1000, (post, received, consume) =>
      Effect.gen(function*() {
        yield* consume
        const reply = yield* post(JSON.stringify(request([{ body: s("ok") }, { severityNumber: "WARN", body: s("enum as a name") }, { body: s("x".repeat(2000)) }])), {
          "content-type": "application/json"
        })
        assert.strictEqual(reply.status, 200)
        const { partialSuccess } = JSON.parse(reply.body.toString()) as { partialSuccess: { rejectedLogRecords: string; errorMessage: string } }
        assert.strictEqual(partialSuccess.rejectedLogRecords, "1")
        assert.match(partialSuccess.errorMessage, /1 of 3 log records rejected; the first: log record 2: severityNumber is not an integer; 1 messages cut at 1024 bytes/)
        yield* settle
        assert.deepStrictEqual(received().map((p) => p.message.length), [2, 1024])
      })))

  it.live("answers 413 to a body over the limit, as sent or once decompressed, and 415 to another type", () =>
    withServer(1000, (post, received, consume) =>
      Effect.gen(function*() {
        yield* consume
        const big = yield* post(Buffer.alloc(70 * 1024))
        assert.deepStrictEqual([big.status, status(big).code], [413, 8])
        const bomb = gzipSync(Buffer.alloc(10 * 1024 * 1024))
        assert.isBelow(bomb.length, 64 * 1024)
        const inflated = yield* post(bomb, { "content-encoding": "gzip" })
        assert.strictEqual(inflated.status, 413)
        assert.match(status(inflated).message!, /once decompressed/)
        assert.strictEqual((yield* post("x", { "content-type": "text/plain" })).status, 415)
        assert.strictEqual((yield* post("x", { "content-encoding": "br" })).status, 415)
        yield* settle
        assert.strictEqual(received().length, 0)
      })))

  it.live("answers 503 with Retry-After while it cannot take anything; once part of a request is taken, the rest waits", () =>
    withServer(4, (post, received, consume) =>
      Effect.gen(function*() {
        // Nothing takes packets off the queue to the router: it fills up.
        assert.strictEqual((yield* post(records("1", "2", "3"))).status, 200)
        // One of these fits; the other two wait for room, and so does the answer.
        const waiting = yield* Effect.forkChild(post(records("4", "5", "6")))
        yield* Effect.sleep("300 millis")
        assert.isUndefined(waiting.pollUnsafe(), "the answer waits while the rest of the request waits")
        const saturated = yield* post(records("7"))
        assert.deepStrictEqual([saturated.status, saturated.retryAfter, status(saturated).code], [503, "1", 14])
        assert.match(yield* PrometheusMetrics.format(), /logtrain_input_throttled_total\{input="otlp"\} 1/)
        yield* consume
        assert.strictEqual((yield* Fiber.join(waiting)).status, 200)
        assert.strictEqual((yield* post(records("7"))).status, 200, "the retry is taken")
        yield* settle
        assert.deepStrictEqual(received().map((p) => p.message), ["1", "2", "3", "4", "5", "6", "7"])
      })))
})
