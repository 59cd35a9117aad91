/**
 * The Envoy access-log input against a real gRPC client (@grpc/grpc-js), on both service names.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Grpc from "@grpc/grpc-js"
import { Context, Duration, Effect, Layer } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { Ingest } from "../../../src/layers/routing/Ingest.ts"
import * as EnvoyAls from "../../../src/layers/inputs/envoy/EnvoyAls.ts"
import { Readiness } from "../../../src/layers/Readiness.ts"
import { waitUntil } from "../../helpers/eventually.ts"
import * as IngestCollector from "../../helpers/IngestCollector.ts"
import { freePort } from "../../helpers/ports.ts"

type Message = EnvoyAls.StreamAccessLogsMessage
type Stream = Grpc.ClientWritableStream<Message>

const definitions = EnvoyAls.services()
const clientOf = (version: "v2" | "v3", port: number) => {
  const Client = Grpc.makeGenericClientConstructor(definitions[version], `AccessLogService${version}`)
  return new Client(`127.0.0.1:${port}`, Grpc.credentials.createInsecure()) as unknown as Grpc.Client & {
    StreamAccessLogs(callback: (error: Grpc.ServiceError | null) => void): Stream
  }
}

/** Opens a stream; `result` settles with the server's answer when it ends. */
const open = (client: ReturnType<typeof clientOf>) => {
  let settle!: (error: Grpc.ServiceError | null) => void
  const result = new Promise<Grpc.ServiceError | null>((resolve) => (settle = resolve))
  const stream = client.StreamAccessLogs((error) => settle(error))
  return { stream, result }
}

const identifier = { node: { id: "sidecar~10.0.0.7~web-5d8f7c-x2x9q.shop~shop.svc.cluster.local", cluster: "web.shop" }, log_name: "als" }

/** An HTTP entry for `service` (name.namespace) with request number `n`. */
const http = (service: string, n: number, extra: Record<string, unknown> = {}) => ({
  common_properties: {
    upstream_cluster: `outbound|80||${service}.svc.cluster.local`,
    start_time: { seconds: 1_700_000_000 + n, nanos: 0 },
    time_to_last_upstream_tx_byte: { nanos: 1_000_000 },
    time_to_last_upstream_rx_byte: { nanos: 20_000_000 },
    time_to_last_downstream_tx_byte: { nanos: 21_500_000 },
    ...extra
  },
  protocol_version: "HTTP11",
  request: { request_method: "GET", authority: "web", path: `/items/${n}`, request_id: `r${n}`, forwarded_for: "10.1.1.1", request_headers_bytes: 100 },
  response: { response_code: { value: 200 }, response_headers_bytes: 50, response_body_bytes: 10 }
})

const line = (n: number) =>
  `bytes=160 request_size=100 response_size=60 method=GET request_id=r${n} fwd=10.1.1.1 authority=web protocol=http11 status=200 ` +
  `connect=1.00ms service=20.00ms total=21.50ms path=/items/${n}`

const metric = (text: string, name: string) =>
  Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, "m").exec(text)?.[1] ?? Number.NaN)
const metrics = PrometheusMetrics.format()
const recordsRead = Effect.map(metrics, (t) => metric(t, 'logtrain_input_records_total\\{input="envoy"\\}'))

/** The input on a free port, with Ingest and a collector of what it queues. */
const harness = (options: { readonly capacity?: number; readonly consume?: boolean; readonly akkeris?: boolean } = {}) =>
  Effect.gen(function*() {
    const port = yield* Effect.promise(freePort)
    const context = yield* Layer.build(
      Layer.provideMerge(
        EnvoyAls.layer({ host: "127.0.0.1", port, akkeris: options.akkeris ?? false }),
        Layer.mergeAll(Ingest.layer({ capacity: options.capacity ?? 10_000 }), Readiness.layer)
      )
    )
    const { consume, messages, received } = IngestCollector.make(Context.get(context, Ingest))
    if (options.consume ?? true) yield* consume
    const clients: Array<Grpc.Client> = []
    yield* Effect.addFinalizer(() => Effect.sync(() => clients.forEach((c) => c.close())))
    const client = (version: "v2" | "v3") => {
      const c = clientOf(version, port)
      clients.push(c)
      return c
    }
    return { port, received, consume, client, messages }
  })

describe("Envoy access-log input", () => {
  it.live("takes v3 and v2 streams of several messages of several entries, with TLS and response flags", () =>
    Effect.gen(function*() {
      const before = yield* metrics
      const { client, messages, received } = yield* harness()
      const v3 = open(client("v3"))
      const v2 = open(client("v2"))
      v3.stream.write({ identifier, http_logs: { log_entry: [http("web.shop", 1), http("web.shop", 2)] } })
      v2.stream.write({ identifier, http_logs: { log_entry: [http("api.default", 10)] } })
      v3.stream.write({
        http_logs: {
          log_entry: [
            http("web.shop", 3, {
              tls_properties: { tls_version: "TLSv1_2", tls_sni_hostname: "shop.example.com" }
            }),
            // The client went away before an answer: no response code.
            { ...http("web.shop", 4, { response_flags: { downstream_connection_termination: true, upstream_request_timeout: true } }), response: {} },
            // An inbound cluster names no service: counted, not routed.
            { ...http("web.shop", 5), common_properties: { upstream_cluster: "inbound|8080||" } }
          ]
        }
      })
      v2.stream.write({ http_logs: { log_entry: [http("api.default", 11), http("api.default", 12)] } })
      v3.stream.write({
        tcp_logs: {
          log_entry: [{
            common_properties: { upstream_cluster: "outbound|5432||db.shop.svc.cluster.local", time_to_last_downstream_tx_byte: { seconds: 2 } },
            connection_properties: { received_bytes: 300, sent_bytes: 700 }
          }]
        }
      })
      v3.stream.end()
      v2.stream.end()
      assert.isNull(yield* Effect.promise(() => v3.result))
      assert.isNull(yield* Effect.promise(() => v2.result))
      yield* waitUntil(() => received.length >= 7, Duration.seconds(5), () => `${received.length} of 7`)
      assert.deepStrictEqual(messages("web.shop"), [
        line(1),
        line(2),
        "bytes=160 request_size=100 response_size=60 method=GET request_id=r3 fwd=10.1.1.1 authority=web " +
        "origin=https://shop.example.com protocol=http11 tls=TLSv1_2 status=200 connect=1.00ms service=20.00ms total=21.50ms path=/items/3",
        "bytes=100 request_size=100 response_size=0 method=GET request_id=r4 fwd=10.1.1.1 authority=web protocol=http11 status=499 " +
        "connect=1.00ms service=20.00ms total=21.50ms path=/items/4"
      ])
      assert.deepStrictEqual(messages("api.default"), [line(10), line(11), line(12)])
      assert.deepStrictEqual(messages("db.shop"), ["bytes=1000 received=300 sent=700 protocol=tcp connect=0.00ms total=2000.00ms"])
      const first = received.find((p) => p.hostname === "web.shop")!
      assert.deepStrictEqual([first.tag, first.time.toISOString(), first.severity, first.facility], ["envoy", "2023-11-14T22:13:21.000Z", 6, 1])
      const after = yield* metrics
      const skipped = 'logtrain_input_skipped_total\\{input="envoy",reason="no_service"\\}'
      assert.strictEqual(metric(after, skipped) - (metric(before, skipped) || 0), 1)
    }))

  it.live("names with Akkeris rules: name-namespace, tag akkeris/router", () =>
    Effect.gen(function*() {
      const { client, received } = yield* harness({ akkeris: true })
      const s = open(client("v3"))
      s.stream.write({ http_logs: { log_entry: [http("web.shop", 1)] } })
      s.stream.end()
      yield* Effect.promise(() => s.result)
      yield* waitUntil(() => received.length >= 1, Duration.seconds(5), () => `${received.length}`)
      assert.deepStrictEqual([received[0]!.hostname, received[0]!.tag], ["web-shop", "akkeris/router"])
    }))

  it.live("a client that goes away mid-stream, or sends what cannot be decoded, ends only its own stream", () =>
    Effect.gen(function*() {
      const before = yield* metrics
      const { client, messages, port } = yield* harness()
      const steady = open(client("v3"))
      steady.stream.write({ http_logs: { log_entry: [http("web.shop", 1)] } })

      const leaving = open(client("v2"))
      leaving.stream.write({ http_logs: { log_entry: [http("gone.shop", 1)] } })
      yield* waitUntil(() => messages("gone.shop").length === 1, Duration.seconds(5), () => "gone.shop's first entry")
      leaving.stream.cancel()
      assert.strictEqual((yield* Effect.promise(() => leaving.result))?.code, Grpc.status.CANCELLED)

      // Bytes that are no StreamAccessLogsMessage (a field 2 claiming 127 bytes, with 2 behind it).
      const raw = new Grpc.Client(`127.0.0.1:${port}`, Grpc.credentials.createInsecure())
      const garbage = yield* Effect.promise(() =>
        new Promise<Grpc.ServiceError | null>((resolve) => {
          const call = raw.makeClientStreamRequest<Buffer, Buffer>(
            "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs",
            (b) => b,
            (b) => b,
            (error) => resolve(error)
          )
          call.write(Buffer.from([0x12, 0x7f, 0x01, 0x02]))
          call.end()
        })
      )
      raw.close()
      assert.isNotNull(garbage)
      assert.notStrictEqual(garbage!.code, Grpc.status.OK)

      steady.stream.write({ http_logs: { log_entry: [http("web.shop", 2), http("web.shop", 3)] } })
      steady.stream.end()
      assert.isNull(yield* Effect.promise(() => steady.result))
      yield* waitUntil(() => messages("web.shop").length >= 3, Duration.seconds(5), () => `${messages("web.shop").length} of 3`)
      assert.deepStrictEqual(messages("web.shop"), [line(1), line(2), line(3)])
      const after = yield* metrics
      // Every stream has ended, the broken ones included.
      assert.strictEqual(metric(after, 'logtrain_input_connections\\{input="envoy"\\}'), 0)
      const malformed = 'logtrain_input_errors_total\\{input="envoy",reason="malformed"\\}'
      assert.strictEqual(metric(after, malformed) - (metric(before, malformed) || 0), 1)
    }))

  it.live("a flood waits for the router instead of piling up in memory, then everything arrives in order", () =>
    Effect.gen(function*() {
      const { client, consume, messages } = yield* harness({ capacity: 50, consume: false })
      const s = open(client("v3"))
      const batches = 400
      for (let b = 0; b < batches; b++) {
        s.stream.write({ http_logs: { log_entry: Array.from({ length: 10 }, (_, i) => http("web.shop", b * 10 + i)) } })
      }
      s.stream.end()
      const start = yield* recordsRead
      yield* Effect.sleep("1 second")
      // The router takes nothing yet: logtrain read only what fits its queue and a few messages more.
      const read = (yield* recordsRead) - (start || 0)
      assert.isAtMost(read, 300, `read ${read} of 4000 entries while the router was full`)
      yield* consume
      assert.isNull(yield* Effect.promise(() => s.result))
      yield* waitUntil(() => messages("web.shop").length >= batches * 10, Duration.seconds(10), () => `${messages("web.shop").length}`)
      assert.deepStrictEqual(messages("web.shop"), Array.from({ length: batches * 10 }, (_, n) => line(n)))
    }), 30_000)
})
