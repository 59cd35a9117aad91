/**
 * Syslog over UDP (`SYSLOG_UDP`, port `SYSLOG_UDP_PORT`, 9003): one RFC 5424 or RFC 3164 message
 * per datagram (RFC 5426).
 *
 * A datagram longer than SYSLOG_MAX_MESSAGE_SIZE is cut to it, on a UTF-8 character boundary, and
 * counted. UDP cannot be slowed down, so nothing here waits: datagrams that arrive faster than logtrain
 * takes them are dropped — by the socket's bounded buffer or because Ingest is full — and counted
 * in `logtrain_input_dropped_total`.
 */
import { Clock, Duration, Effect, Fiber, Layer, Option } from "effect"
import { Buffer } from "node:buffer"
import type { LogPacket } from "../../domain/LogPacket.ts"
import { utf8Cut } from "../../domain/syslog/Framing.ts"
import { Ingest } from "../routing/Ingest.ts"
import { Readiness } from "../Readiness.ts"
import type { TransportError } from "../transports/TransportError.ts"
import * as Udp from "../transports/udp.ts"
import * as InputStats from "./InputStats.ts"
import * as Log from "../Log.ts"

export interface Options {
  readonly host: string
  readonly port: number
  /** Messages longer than this many bytes are truncated (and counted). */
  readonly maxMessageBytes: number
}

export const INPUT = "syslog_udp"

/** During shutdown, the socket is done when no datagram came for this long (at most DRAIN_DEADLINE). */
const DRAIN_IDLE = Duration.millis(50)
const DRAIN_DEADLINE = Duration.seconds(2)

/** Datagrams held between the socket and the reader. */
const BUFFERED_DATAGRAMS = 8192

export const layer = (options: Options): Layer.Layer<never, TransportError, Ingest | Readiness> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const ingest = yield* Ingest
    const check = yield* (yield* Readiness).register(`input:${INPUT}`)
    const stats = yield* InputStats.make(INPUT)
    const server = yield* Udp.bind({ host: options.host, port: options.port, bufferedDatagrams: BUFFERED_DATAGRAMS })

    /** Packets Ingest had no room for; the socket counts its own drops. */
    let ingestDrops = 0
    const take = (datagrams: ReadonlyArray<Udp.Datagram>, receivedAt: Date) => {
      const packets: Array<LogPacket> = []
      for (const datagram of datagrams) {
        stats.bytes += datagram.payload.length
        let length = datagram.payload.length
        if (length > options.maxMessageBytes) {
          // Cut as TCP cuts: never inside a UTF-8 character.
          length = utf8Cut(datagram.payload, 0, options.maxMessageBytes)
          stats.truncated++
        }
        const line = Buffer.from(datagram.payload.buffer, datagram.payload.byteOffset, length).toString("utf8")
        InputStats.parseLines([line], receivedAt, datagram.from, stats, packets)
      }
      ingestDrops += ingest.offerOrDrop(packets)
      stats.dropped = server.dropped() + ingestDrops
    }
    const receive = Effect.gen(function*() {
      const datagrams = yield* server.read
      take(datagrams, new Date(yield* Clock.currentTimeMillis))
    })

    const reader = yield* receive.pipe(
      Effect.forever,
      Effect.catch((error) => Log.error("syslog over UDP stopped reading", { error: error.message })),
      Effect.forkScoped
    )
    // On shutdown, take what the socket has already received before it closes.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* Fiber.interrupt(reader)
        while (true) {
          const more = yield* server.read.pipe(Effect.timeoutOption(DRAIN_IDLE), Effect.orElseSucceed(() => Option.none()))
          if (Option.isNone(more)) return
          take(more.value, new Date(yield* Clock.currentTimeMillis))
        }
      }).pipe(Effect.timeoutOption(DRAIN_DEADLINE), Effect.asVoid)
    )
    yield* check.ready
    yield* Log.info("syslog over UDP listening", { port: server.port })
  }))
