/**
 * Syslog over TCP (`SYSLOG_TCP`, port `SYSLOG_TCP_PORT`, 9002) and over TLS (`SYSLOG_TLS`, port
 * `SYSLOG_TLS_PORT`, 9004): RFC 5424 or RFC 3164 messages, octet-counted or newline-framed,
 * detected per frame (RFC 6587; RFC 5425 for TLS). With a CA, TLS clients must present a
 * certificate it signed; a client refused at the handshake is counted and reported.
 *
 * What a sender can hold is bounded (see `limitsConfig`): connections per input, silence, an
 * unfinished frame's wait for its end, a TLS handshake's length — so memory and descriptors stay
 * within the agent's envelope whatever peers do; each limit is counted when it bites
 * (`logtrain_input_limited_total{reason}`).
 *
 * Each connection is read only as fast as the router takes packets: a chunk is decoded and offered
 * to Ingest, and the next chunk is not read until Ingest has room, so TCP flow control carries the
 * backpressure to the sender. A chunk once read is always offered, even during shutdown, and
 * shutdown first reads what open connections have already sent (until each is idle for 100 ms,
 * at most 2 s), since a TCP sender counts what it wrote as delivered.
 */
import { Clock, Config, Deferred, Duration, Effect, Layer, Option } from "effect"
import { FrameDecoder } from "../../domain/syslog/Framing.ts"
import { Ingest } from "../routing/Ingest.ts"
import { Readiness } from "../Readiness.ts"
import * as Tcp from "../transports/tcp.ts"
import type { TransportError } from "../transports/TransportError.ts"
import * as InputStats from "./InputStats.ts"
import { atLeast, duration } from "../ConfigValues.ts"
import * as Log from "../Log.ts"

export interface Options {
  readonly host: string
  readonly port: number
  /** Messages longer than this many bytes are truncated (and counted). */
  readonly maxMessageBytes: number
  /** Serve TLS instead of plain TCP. */
  readonly tls?: Tcp.ServerTls | undefined
  /** What each connection is held to; read from the environment (`limitsConfig`) when not given. */
  readonly limits?: Tcp.ServerLimits | undefined
}

/**
 * The limits of the syslog TCP and TLS inputs, each input on its own. The defaults keep what
 * peers can make logtrain hold within its 128 MiB envelope: 128 connections (a node runs at most
 * 110 pods by default) each holding an unfinished frame of SYSLOG_MAX_MESSAGE_SIZE (64 KiB) is
 * 8 MiB per input — measured with bench/hostile-connections.ts, 5,000 such connections against
 * the bundle: 93–96 MB resident while held, 111 MB at the peak, when they all close and deliver
 * what they held; 256 connections peaked at 141 MB. A TLS handshake in progress costs ~16 KiB.
 * A zero duration turns a timeout off.
 */
export const limitsConfig: Config.Config<Tcp.ServerLimits> = Config.all({
  maxConnections: Config.withDefault(atLeast("SYSLOG_MAX_CONNECTIONS", 1), 128),
  idleTimeout: Config.withDefault(duration("SYSLOG_IDLE_TIMEOUT"), Duration.minutes(10)),
  frameTimeout: Config.withDefault(duration("SYSLOG_FRAME_TIMEOUT"), Duration.seconds(30)),
  handshakeTimeout: Config.withDefault(duration("SYSLOG_TLS_HANDSHAKE_TIMEOUT"), Duration.seconds(10))
})

/** How long a connection must be quiet, during shutdown, to be considered done. */
const DRAIN_IDLE = Duration.millis(100)
/** How often shutdown looks for connections that have gone idle. */
const DRAIN_CHECK = Duration.millis(20)
/** The longest shutdown waits for connections to finish sending. */
const DRAIN_DEADLINE = Duration.seconds(2)

export const layer = (options: Options): Layer.Layer<never, TransportError | Config.ConfigError, Ingest | Readiness> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const input = options.tls === undefined ? "syslog_tcp" : "syslog_tls"
    const limits = options.limits ?? (yield* limitsConfig)
    const ingest = yield* Ingest
    const check = yield* (yield* Readiness).register(`input:${input}`)
    let server: Tcp.Server | undefined
    const stats = yield* InputStats.make(
      input,
      Tcp.limitReasons.filter((reason) => reason !== "handshake_timeout" || options.tls !== undefined),
      // Open connections as the server counts them: TLS handshakes in progress too.
      () => server?.connections() ?? 0
    )
    /** Connections being read (the server's count also has TLS handshakes). */
    const reading = new Set<Tcp.InboundConnection>()

    // On shutdown, connections are not cut at once: what a sender has already sent (its write is
    // done, so it counts the lines as delivered) is read first — each connection is closed once
    // its read has waited DRAIN_IDLE for more (counted from the start of the shutdown), and
    // shutdown waits for that at most DRAIN_DEADLINE in all. (Each read is a plain read: racing
    // every read against the start of the shutdown forked two fibers per read.)
    let drainingSince = 0
    /** Done once draining has begun and no connection is being read. */
    const allRead = yield* Deferred.make<void>()
    const checkAllRead = Effect.suspend(() => (drainingSince > 0 && reading.size === 0 ? Deferred.succeed(allRead, undefined) : Effect.void))

    const connection = (conn: Tcp.InboundConnection) =>
      Effect.gen(function*() {
        reading.add(conn)
        yield* Effect.addFinalizer(() => Effect.andThen(Effect.sync(() => reading.delete(conn)), checkAllRead))
        const decoder = new FrameDecoder({ maxFrameBytes: options.maxMessageBytes, bytes: true })
        const offer = (lines: Array<string>, now: number) => ingest.offer(InputStats.parseRawLines(lines, new Date(now), conn.peerAddress, stats))
        const read = Effect.result(conn.read)
        while (true) {
          const chunks = yield* read
          const now = yield* Clock.currentTimeMillis
          if (chunks._tag === "Failure") {
            yield* Effect.uninterruptible(offer(decoder.end(), now))
            return
          }
          const lines: Array<string> = []
          const truncatedBefore = decoder.truncated
          for (const chunk of chunks.success) {
            stats.bytes += chunk.length
            decoder.decode(chunk, lines)
          }
          stats.truncated += decoder.truncated - truncatedBefore
          conn.holdingFrame(decoder.pendingBytes > 0)
          yield* Effect.uninterruptible(offer(lines, now))
        }
      }).pipe(Effect.scoped)

    /** Closes the connections whose read has waited DRAIN_IDLE since the shutdown began, or longer. */
    const closeIdle = Effect.sync(() => {
      // Wall-clock time, as the server's `waitingSince` is.
      const now = Date.now()
      for (const conn of reading) {
        const since = conn.waitingSince()
        if (since > 0 && now - Math.max(since, drainingSince) >= Duration.toMillis(DRAIN_IDLE)) conn.close()
      }
    })

    server = yield* Tcp.serve(
      { host: options.host, port: options.port, tls: options.tls, limits },
      connection,
      {
        limited: (reason) => {
          stats.limited[reason] = (stats.limited[reason] ?? 0) + 1
        },
        rejected: (detail) => {
          stats.handshakeFailures++
          stats.lastHandshakeFailure = detail
        }
      }
    )
    // Added after the server, so it runs first on shutdown, while connections are still open.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        drainingSince = Date.now()
        yield* checkAllRead
        const ended = yield* Deferred.await(allRead).pipe(
          Effect.raceFirst(Effect.forever(Effect.andThen(Effect.sleep(DRAIN_CHECK), closeIdle))),
          Effect.timeoutOption(DRAIN_DEADLINE)
        )
        if (Option.isNone(ended)) {
          yield* Log.warn("input closed with connections still sending", { input, connections: reading.size })
        }
      })
    )
    yield* check.ready
    yield* Log.info(options.tls === undefined ? "syslog over TCP listening" : "syslog over TLS listening", {
      port: server.port,
      ...(options.tls?.ca === undefined ? {} : { clientCertificates: "required, verified against SYSLOG_TLS_CA_PEM" }),
      maxConnections: limits.maxConnections
    })
  }))
