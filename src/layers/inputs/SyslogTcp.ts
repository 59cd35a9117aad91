/**
 * Syslog over TCP (`SYSLOG_TCP`, port `SYSLOG_TCP_PORT`, 9002) and over TLS (`SYSLOG_TLS`, port
 * `SYSLOG_TLS_PORT`, 9004): RFC 5424 or RFC 3164 messages, octet-counted or newline-framed,
 * detected per frame (RFC 6587; RFC 5425 for TLS). With a CA, TLS clients must present a
 * certificate it signed; a client refused at the handshake is counted and reported.
 *
 * Each connection is read only as fast as the router takes packets: a chunk is decoded and offered
 * to Ingest, and the next chunk is not read until Ingest has room, so TCP flow control carries the
 * backpressure to the sender. A chunk once read is always offered, even during shutdown, and
 * shutdown first reads what open connections have already sent (until each is idle for 100 ms,
 * at most 2 s), since a TCP sender counts what it wrote as delivered.
 */
import { Clock, Deferred, Duration, Effect, Layer, Option } from "effect"
import type { LogPacket } from "../../domain/LogPacket.ts"
import { FrameDecoder } from "../../domain/syslog/Framing.ts"
import { Ingest } from "../Ingest.ts"
import { Readiness } from "../Readiness.ts"
import * as Tcp from "../transports/tcp.ts"
import type { TransportError } from "../transports/TransportError.ts"
import * as InputStats from "./InputStats.ts"
import * as Log from "../Log.ts"

export interface Options {
  readonly host: string
  readonly port: number
  /** Messages longer than this many bytes are truncated (and counted). */
  readonly maxMessageBytes: number
  /** Serve TLS instead of plain TCP. */
  readonly tls?: Tcp.ServerTls | undefined
}

/** How long a connection must be quiet, during shutdown, to be considered done. */
const DRAIN_IDLE = Duration.millis(100)
/** The longest shutdown waits for connections to finish sending. */
const DRAIN_DEADLINE = Duration.seconds(2)

const waitUntil = (condition: () => boolean): Effect.Effect<void> =>
  Effect.suspend(() => (condition() ? Effect.void : Effect.andThen(Effect.sleep(Duration.millis(10)), waitUntil(condition))))

export const layer = (options: Options): Layer.Layer<never, TransportError, Ingest | Readiness> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const input = options.tls === undefined ? "syslog_tcp" : "syslog_tls"
    const ingest = yield* Ingest
    const check = yield* (yield* Readiness).register(`input:${input}`)
    const stats = yield* InputStats.make(input)

    // On shutdown, connections are not cut at once: what a sender has already sent (its write is
    // done, so it counts the lines as delivered) is read first — until the connection has been
    // idle for DRAIN_IDLE, for at most DRAIN_DEADLINE in all.
    let draining = false
    const drainStarted = yield* Deferred.make<void>()

    const connection = (conn: Tcp.InboundConnection) =>
      Effect.gen(function*() {
        stats.connections++
        yield* Effect.addFinalizer(() => Effect.sync(() => stats.connections--))
        const decoder = new FrameDecoder({ maxFrameBytes: options.maxMessageBytes })
        const offer = (lines: ReadonlyArray<string>, now: number) => {
          const packets: Array<LogPacket> = []
          InputStats.parseLines(lines, new Date(now), conn.peerAddress, stats, packets)
          return ingest.offer(packets)
        }
        const read = Effect.result(conn.read)
        const next = Effect.suspend(() =>
          draining
            ? Effect.map(Effect.timeoutOption(read, DRAIN_IDLE), (o) => (Option.isNone(o) ? "idle" as const : o.value))
            : Effect.raceFirst(read, Effect.as(Deferred.await(drainStarted), "draining" as const))
        )
        while (true) {
          const chunks = yield* next
          if (chunks === "draining") continue
          const now = yield* Clock.currentTimeMillis
          if (chunks === "idle" || chunks._tag === "Failure") {
            yield* Effect.uninterruptible(offer(decoder.end(), now))
            return
          }
          const lines: Array<string> = []
          const truncatedBefore = decoder.truncated
          for (const chunk of chunks.success) {
            stats.bytes += chunk.length
            for (const line of decoder.decode(chunk)) lines.push(line)
          }
          stats.truncated += decoder.truncated - truncatedBefore
          yield* Effect.uninterruptible(offer(lines, now))
        }
      }).pipe(Effect.scoped)

    const server = yield* Tcp.serve(
      { host: options.host, port: options.port, tls: options.tls },
      connection,
      (error) =>
        Effect.sync(() => {
          stats.handshakeFailures++
          stats.lastHandshakeFailure = error.message
        })
    )
    // Added after the server, so it runs first on shutdown, while connections are still open.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        draining = true
        yield* Deferred.succeed(drainStarted, undefined)
        const ended = yield* waitUntil(() => stats.connections === 0).pipe(Effect.timeoutOption(DRAIN_DEADLINE))
        if (Option.isNone(ended)) {
          yield* Log.warn("input closed with connections still sending", { input, connections: stats.connections })
        }
      })
    )
    yield* check.ready
    yield* Log.info(options.tls === undefined ? "syslog over TCP listening" : "syslog over TLS listening", {
      port: server.port,
      ...(options.tls?.ca === undefined ? {} : { clientCertificates: "required" })
    })
  }))
