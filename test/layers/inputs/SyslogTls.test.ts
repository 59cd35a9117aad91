import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Redacted, Schedule, Stream } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as Tls from "node:tls"
import type { LogPacket } from "../../../src/domain/LogPacket.ts"
import { Ingest } from "../../../src/layers/routing/Ingest.ts"
import * as SyslogTcp from "../../../src/layers/inputs/SyslogTcp.ts"
import { Readiness } from "../../../src/layers/Readiness.ts"
import { certificates } from "../../helpers/certs.ts"
import { freePort } from "../../helpers/ports.ts"

const octet = (line: string) => `${Buffer.byteLength(line)} ${line}`

/** Sends `text` over TLS; resolves with the connection's fate. */
const send = (port: number, options: Tls.ConnectionOptions, text: string) =>
  new Promise<"sent" | string>((resolve) => {
    const socket = Tls.connect({ host: "127.0.0.1", port, servername: "localhost", ...options }, () => {
      socket.end(text, () => resolve("sent"))
    })
    socket.on("error", (error) => resolve(error.message))
    socket.on("close", () => resolve("closed"))
  })

const run = <A, E>(port: number, requireClientCertificate: boolean, body: Effect.Effect<A, E, Ingest>) => {
  const certs = certificates()
  const input = SyslogTcp.layer({
    host: "127.0.0.1",
    port,
    maxMessageBytes: 4096,
    tls: {
      key: Redacted.make(certs.serverKey),
      cert: certs.serverCert,
      ca: requireClientCertificate ? certs.ca : undefined
    }
  })
  return body.pipe(Effect.provide(Layer.provideMerge(input, Layer.mergeAll(Ingest.layer({ capacity: 100 }), Readiness.layer))))
}

const takeOne = Effect.gen(function*() {
  const ingest = yield* Ingest
  return yield* ingest.packets.pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
})

describe("syslog over TLS input", () => {
  it.live("takes octet-counted syslog from a client that trusts its CA", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      yield* run(port, false, Effect.gen(function*() {
        const taking = yield* takeOne
        const fate = yield* Effect.promise(() => send(port, { ca: certificates().ca }, octet("<14>1 - host app - - - over tls")))
        assert.strictEqual(fate, "sent")
        const [packet] = (yield* Fiber.join(taking)) as ReadonlyArray<LogPacket>
        assert.strictEqual(packet!.message, "over tls")
      }))
    }))

  it.live("with a CA set, refuses clients without a certificate it signed, and counts them", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const certs = certificates()
      yield* run(port, true, Effect.gen(function*() {
        const taking = yield* takeOne
        yield* Effect.promise(() => send(port, { ca: certs.ca }, octet("<14>1 - host app - - - no client cert")))
        const fate = yield* Effect.promise(() =>
          send(port, { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey }, octet("<14>1 - host app - - - with client cert"))
        )
        assert.strictEqual(fate, "sent")
        const [packet] = (yield* Fiber.join(taking)) as ReadonlyArray<LogPacket>
        assert.strictEqual(packet!.message, "with client cert")
        const metrics = yield* PrometheusMetrics.format()
        assert.match(metrics, /logtrain_input_errors_total\{input="syslog_tls",reason="tls_handshake"\} 1/)
      }))
    }))

  it.live("with a CA set, refuses a client certificate of another CA, an expired one and a self-signed one, counts each, and takes none of their lines", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const certs = certificates()
      yield* run(port, true, Effect.gen(function*() {
        const ingest = yield* Ingest
        const taking = yield* ingest.packets.pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
        for (const [name, client] of Object.entries(certs.refusedClients)) {
          // TLS 1.3 lets the client finish its side of the handshake before the server has checked
          // its certificate: it may write its line, which must never be taken.
          yield* Effect.promise(() => send(port, { ca: certs.ca, cert: client.cert, key: client.key }, octet(`<14>1 - host app - - - from ${name}`)))
        }
        const fate = yield* Effect.promise(() =>
          send(port, { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey }, octet("<14>1 - host app - - - with a good client cert"))
        )
        assert.strictEqual(fate, "sent")
        // The first line taken is the good client's: none of the refused ones got through.
        const [packet] = (yield* Fiber.join(taking)) as ReadonlyArray<LogPacket>
        assert.strictEqual(packet!.message, "with a good client cert")
        const metrics = yield* PrometheusMetrics.format()
        assert.match(metrics, /logtrain_input_errors_total\{input="syslog_tls",reason="tls_handshake"\} 3/)
        // Every connection, refused or done, is let go.
        yield* Effect.gen(function*() {
          const now = yield* PrometheusMetrics.format()
          if (!/logtrain_input_connections\{input="syslog_tls"\} 0/.test(now)) return yield* Effect.fail("connections still open")
        }).pipe(Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: 40 }))))
      }))
    }))
})
