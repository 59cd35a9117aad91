/**
 * The limits of the syslog TCP and TLS inputs, bitten for real over loopback: too many
 * connections, silence, an unfinished frame that never ends, TLS handshakes that never start.
 * Each must close what it should, count it by reason, and leave everything else alone.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Redacted, Stream } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as Net from "node:net"
import type { LogPacket } from "../../../src/domain/LogPacket.ts"
import { Ingest } from "../../../src/layers/routing/Ingest.ts"
import * as SyslogTcp from "../../../src/layers/inputs/SyslogTcp.ts"
import { Readiness } from "../../../src/layers/Readiness.ts"
import type { ServerLimits } from "../../../src/layers/transports/tcp.ts"
import { certificates } from "../../helpers/certs.ts"
import { freePort } from "../../helpers/ports.ts"
import { waitUntil } from "../../helpers/eventually.ts"

const limits = (overrides: Partial<ServerLimits>): ServerLimits => ({
  maxConnections: 100,
  idleTimeout: Duration.seconds(30),
  frameTimeout: Duration.seconds(30),
  handshakeTimeout: Duration.seconds(30),
  ...overrides
})

const run = <A, E>(options: SyslogTcp.Options, body: Effect.Effect<A, E, Ingest>, capacity = 100) =>
  body.pipe(Effect.provide(Layer.provideMerge(SyslogTcp.layer(options), Layer.mergeAll(Ingest.layer({ capacity }), Readiness.layer))))

interface Client {
  readonly socket: Net.Socket
  /** Resolves when the server closes the connection (or it fails). */
  readonly closed: Promise<void>
  readonly isClosed: () => boolean
}

const connect = (port: number) =>
  new Promise<Client>((resolve) => {
    let closed = false
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.on("error", () => {})
    socket.on("data", () => {})
    const done = new Promise<void>((r) => socket.once("close", () => {
      closed = true
      r()
    }))
    socket.once("connect", () => resolve({ socket, closed: done, isClosed: () => closed }))
    socket.once("close", () => resolve({ socket, closed: done, isClosed: () => true }))
  })

const metric = (name: string, labels: string) =>
  Effect.map(PrometheusMetrics.format(), (text) => Number(new RegExp(`^${name}\\{${labels}\\} (\\d+)`, "m").exec(text)?.[1]))

const limited = (input: string, reason: string) => metric("logtrain_input_limited_total", `input="${input}",reason="${reason}"`)
const connections = (input: string) => metric("logtrain_input_connections", `input="${input}"`)

const sleep = (ms: number) => Effect.sleep(Duration.millis(ms))

/** Polls a metric until it reads `expected` (the server sees a close a moment after the client). */
const becomes = (read: Effect.Effect<number>, expected: number, what: string) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 2000
    let value = yield* read
    while (value !== expected && Date.now() < deadline) {
      yield* sleep(20)
      value = yield* read
    }
    assert.strictEqual(value, expected, what)
  })

describe("syslog input limits", () => {
  it.live("closes connections beyond SYSLOG_MAX_CONNECTIONS at once, counts them, and serves the others", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      yield* run({ host: "127.0.0.1", port, maxMessageBytes: 4096, limits: limits({ maxConnections: 3 }) }, Effect.gen(function*() {
        const ingest = yield* Ingest
        const clients: Array<Client> = []
        for (let i = 0; i < 8; i++) clients.push(yield* Effect.promise(() => connect(port)))
        yield* sleep(200)
        assert.strictEqual(clients.filter((c) => c.isClosed()).length, 5)
        assert.strictEqual(yield* limited("syslog_tcp", "connection_limit"), 5)
        assert.strictEqual(yield* connections("syslog_tcp"), 3)
        // The ones let in are read as usual.
        const taking = yield* ingest.packets.pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
        clients[0]!.socket.write("<14>1 - host app - - - let in\n")
        const [packet] = (yield* Fiber.join(taking)) as ReadonlyArray<LogPacket>
        assert.strictEqual(packet!.message, "let in")
        // A slot freed is a slot for the next connection.
        clients[1]!.socket.destroy()
        yield* sleep(100)
        const next = yield* Effect.promise(() => connect(port))
        yield* sleep(100)
        assert.isFalse(next.isClosed())
        for (const c of [...clients, next]) c.socket.destroy()
      }))
    }))

  it.live("closes a connection silent for SYSLOG_IDLE_TIMEOUT, and one holding an unfinished frame for SYSLOG_FRAME_TIMEOUT even while it trickles bytes", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      yield* run({ host: "127.0.0.1", port, maxMessageBytes: 65536, limits: limits({ idleTimeout: Duration.millis(1000), frameTimeout: Duration.millis(3000) }) }, Effect.gen(function*() {
        const ingest = yield* Ingest
        const taking = yield* ingest.packets.pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
        const idle = yield* Effect.promise(() => connect(port))
        const holder = yield* Effect.promise(() => connect(port))
        const chatty = yield* Effect.promise(() => connect(port))
        // Most of a 64 KB line, then a byte every 200 ms: never idle, never finished.
        holder.socket.write(`<14>1 - host app - - - ${"x".repeat(60_000)}`)
        const trickle = setInterval(() => holder.socket.write("y"), 200)
        // Whole lines every 200 ms: neither idle nor holding anything.
        const lines = setInterval(() => chatty.socket.write("<14>1 - host app - - - fine\n"), 200)
        // Margins wide enough for a loaded machine: the silent one goes after 1 s, the holder
        // after 3 s, the chatty one never.
        yield* sleep(400)
        assert.isFalse(idle.isClosed())
        yield* waitUntil(() => idle.isClosed(), Duration.seconds(5), () => "the silent connection closed after 1 s of silence")
        assert.isFalse(holder.isClosed(), "still within its 3 s")
        yield* Effect.promise(() => holder.closed)
        clearInterval(trickle)
        yield* sleep(600)
        clearInterval(lines)
        assert.isFalse(chatty.isClosed(), "whole lines keep a connection open")
        assert.strictEqual(yield* limited("syslog_tcp", "idle_timeout"), 1)
        assert.strictEqual(yield* limited("syslog_tcp", "frame_timeout"), 1)
        // What the holder sent is not lost: a connection that ends delivers its last line.
        const held = (yield* ingest.packets.pipe(Stream.filter((p) => p.message.startsWith("x")), Stream.take(1), Stream.runCollect))
        assert.isTrue(held[0]!.message.startsWith("xxxx"))
        yield* Fiber.interrupt(taking)
        chatty.socket.destroy()
      }))
    }))

  it.live("does not count the time logtrain is not reading (backpressure) against a sender", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      // An Ingest of one packet that nobody takes from: the input stops reading at once.
      yield* run(
        { host: "127.0.0.1", port, maxMessageBytes: 4096, limits: limits({ idleTimeout: Duration.millis(300), frameTimeout: Duration.millis(300) }) },
        Effect.gen(function*() {
          const client = yield* Effect.promise(() => connect(port))
          // Many lines, the last one unfinished: held while logtrain waits for room.
          client.socket.write(`${"<14>1 - host app - - - waiting\n".repeat(5000)}<14>1 - host app - - - unfin`)
          yield* sleep(1200)
          assert.isFalse(client.isClosed())
          assert.strictEqual(yield* limited("syslog_tcp", "idle_timeout"), 0)
          assert.strictEqual(yield* limited("syslog_tcp", "frame_timeout"), 0)
          // Take what is queued, so the input can finish and stop.
          yield* Effect.forkChild(Stream.runDrain((yield* Ingest).packets))
          client.socket.destroy()
        }),
        1
      )
    }))

  it.live("abandons TLS handshakes at SYSLOG_TLS_HANDSHAKE_TIMEOUT, counting them as connections while open and as timeouts, not refusals", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const certs = certificates()
      yield* run({
        host: "127.0.0.1",
        port,
        maxMessageBytes: 4096,
        tls: { key: Redacted.make(certs.serverKey), cert: certs.serverCert },
        limits: limits({ handshakeTimeout: Duration.millis(700) })
      }, Effect.gen(function*() {
        // TCP connections to the TLS port that never say a word.
        const silent: Array<Client> = []
        for (let i = 0; i < 50; i++) silent.push(yield* Effect.promise(() => connect(port)))
        yield* sleep(200)
        assert.strictEqual(yield* connections("syslog_tls"), 50)
        yield* Effect.promise(() => Promise.all(silent.map((c) => c.closed)))
        assert.strictEqual(yield* limited("syslog_tls", "handshake_timeout"), 50)
        assert.strictEqual(yield* metric("logtrain_input_errors_total", `input="syslog_tls",reason="tls_handshake"`), 0)
        yield* becomes(connections("syslog_tls"), 0, "no connection left open")
      }))
    }))
})
