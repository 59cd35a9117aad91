/**
 * Syslog drains: packets formatted as RFC 5424 and carried by a transport.
 *
 * - `syslog+tcp://`: one connection per worker, newline framing by default (as the original; CR, LF
 *   and NUL in a message become spaces), `?framing=octet-counting` for RFC 6587 octet counting,
 *   which keeps multi-line messages intact.
 * - `syslog+udp://`, `syslog://`: one datagram per message, cut at 2048 bytes (RFC 5426: what
 *   receivers should accept); one worker, since UDP keeps no order anyway.
 * - `syslog+tls://`: as tcp, over TLS, octet-counted by default (RFC 5425). The server's
 *   certificate is verified against the system roots plus the URL's `ca` (base64 PEM), unless
 *   `insecure=true`.
 *
 * - `syslog+http://`, `syslog+https://`: batches POSTed as newline-separated lines
 *   (`application/syslog`, as the original, gathered for up to a second), or with
 *   `?framing=octet-counting` as Heroku logplex frames (`application/logplex-1`, with
 *   `Logplex-Msg-Count` and a `Logplex-Frame-Id` that stays the same when a batch is retried).
 *   5xx, 408, 425 and 429 answers and network errors are retried; other answers drop the batch.
 *
 * A packet decoded from RFC 5424 is forwarded byte for byte (see LogPacket.rfc5424).
 */
import { Buffer } from "node:buffer"
import { randomUUID } from "node:crypto"
import { Duration, Effect } from "effect"
import { secretsOf, type SyslogDrainUrl } from "../../domain/DrainUrl.ts"
import type { LogPacket } from "../../domain/LogPacket.ts"
import { FrameWriter, type Framing } from "../../domain/syslog/Framing.ts"
import * as Rfc5424 from "../../domain/syslog/Rfc5424.ts"
import * as Http from "../transports/http.ts"
import * as TcpClient from "../transports/tcpClient.ts"
import * as Tls from "../transports/tls.ts"
import type { TransportError } from "../transports/TransportError.ts"
import * as Udp from "../transports/udp.ts"
import { type DrainError, fromHttpStatus, fromTransport } from "./DrainError.ts"
import { type ConfirmationListener, type DrainSink, DrainSettings, defaultSettings, type Sender } from "./DrainRunner.ts"

/** Largest datagram a UDP drain sends (RFC 5426 §3.2). */
export const MAX_DATAGRAM_BYTES = 2048

const CONNECT_TIMEOUT = Duration.seconds(10)
/** How long an HTTP receiver may take to answer. */
const WRITE_TIMEOUT = Duration.seconds(30)
const PROBE_TIMEOUT = Duration.seconds(2)

/**
 * Plain TCP syslog has no acknowledgements. What was written is kept until it is known to have
 * arrived, as far as TCP can tell: once this many more bytes have gone after it on the same
 * connection, or CONFIRM_AFTER has passed with the connection up and keeping up, or the
 * connection was closed gracefully (the receiver closed its side: it read everything). If the
 * connection fails first, it is written again on the next one (counted as resent): at least once.
 * Beyond that TCP cannot tell, and the README says so: when the receiver is the bottleneck (slow,
 * or stopped), the kernels' buffers hold megabytes, more than this, and a receiver that then dies,
 * or is given up on, loses what of it was confirmed (the fault tests measured 1400-2300 lines).
 * Holding that much per connection until it is surely read would cost megabytes of memory per
 * lane on every busy drain.
 */
const CONFIRM_BYTES = 1024 * 1024
const CONFIRM_AFTER_MS = 1000

/**
 * The batch as the bytes of its framed messages: one write per batch. A packet received as RFC
 * 5424 is sent as it came; another as its formatted header and its message, side by side.
 */
export const encodeBatch = (batch: ReadonlyArray<LogPacket>, framing: Framing): Buffer => {
  const writer = new FrameWriter(framing)
  for (const packet of batch) {
    if (packet.rfc5424 !== undefined) writer.add(packet.rfc5424)
    else writer.add(Rfc5424.header(packet), packet.message)
  }
  return writer.take()
}

/** A message cut to at most `max` UTF-8 bytes, without splitting a character. */
export const datagram = (message: string, max: number): Buffer => {
  const bytes = Buffer.from(message, "utf8")
  if (bytes.length <= max) return bytes
  let end = max
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--
  return bytes.subarray(0, end)
}

/** A connect probe for an HTTP receiver (its host and port). */
export const httpProbe = (url: string): Effect.Effect<boolean> => {
  const parsed = new URL(url)
  const port = parsed.port === "" ? (parsed.protocol === "https:" ? 443 : 80) : Number(parsed.port)
  return TcpClient.probe({ host: parsed.hostname.replace(/^\[|\]$/g, ""), port, timeout: PROBE_TIMEOUT })
}

/** A batch written and not yet known to have arrived. */
interface Written {
  readonly packets: ReadonlyArray<LogPacket>
  readonly at: number
  /** The connection's accepted bytes once it was written, and which connection. */
  readonly end: number
  readonly connection: number
}

/**
 * A sender over a TCP client that confirms later (see CONFIRM_BYTES). Its graceful close (`settle`)
 * waits up to `finishTimeout` for the receiver to have read everything: a slow receiver may take
 * long to read what the kernels hold (megabytes: 4 MB at 400 KB/s is 10 s), and giving up with a
 * reset would discard what logtrain's kernel still held, some of it already confirmed; so it is
 * the stall timeout, as for a write.
 */
export const confirmingSender = (
  client: TcpClient.Client,
  encode: (packets: ReadonlyArray<LogPacket>) => Uint8Array,
  fail: (error: TransportError) => DrainError,
  finishTimeout: Duration.Duration
): Sender => {
  let listener: ConfirmationListener | undefined
  const unconfirmed: Array<Written> = []
  let timer: ReturnType<typeof setTimeout> | undefined
  const schedule = () => {
    if (timer !== undefined || unconfirmed.length === 0) return
    timer = setTimeout(() => {
      timer = undefined
      confirm()
    }, CONFIRM_AFTER_MS)
    timer.unref()
  }
  const confirm = () => {
    const connection = client.connection()
    const now = Date.now()
    while (unconfirmed.length > 0) {
      const written = unconfirmed[0]!
      if (written.connection !== connection.id || !connection.up) break
      const byBytes = client.accepted() - written.end >= CONFIRM_BYTES
      const byTime = now - written.at >= CONFIRM_AFTER_MS && !client.pending()
      if (!byBytes && !byTime) break
      unconfirmed.shift()
      listener?.confirmed(written.packets)
    }
    schedule()
  }
  client.onDown((connection, clean) => {
    if (clean) {
      // The receiver closed it having read it all: what was written on it arrived.
      while (unconfirmed.length > 0 && unconfirmed[0]!.connection === connection) listener?.confirmed(unconfirmed.shift()!.packets)
    }
    if (unconfirmed.length > 0) listener?.broken()
  })
  const write = (packets: ReadonlyArray<LogPacket>) =>
    Effect.map(Effect.mapError(client.write(encode(packets)), fail), () => {
      unconfirmed.push({ packets, at: Date.now(), end: client.accepted(), connection: client.connection().id })
    })
  /**
   * What the failed connection had not confirmed, written again first on a new one — once it is
   * known whether a connection the receiver closed was closed cleanly (then it had it all).
   */
  const resend = Effect.andThen(client.quiet, () => {
    const connection = client.connection()
    if (unconfirmed.length === 0 || (unconfirmed[0]!.connection === connection.id && connection.up)) return Effect.void
    const again = unconfirmed.splice(0)
    const packets = again.flatMap((written) => written.packets)
    return write(packets).pipe(
      Effect.tap(() => Effect.sync(() => listener?.resent(packets.length))),
      Effect.tapError(() => Effect.sync(() => unconfirmed.unshift(...again)))
    )
  })
  return {
    send: (batch) =>
      Effect.andThen(resend, Effect.andThen(write(batch), Effect.sync(confirm))),
    confirmsLater: {
      listen: (l) => {
        listener = l
      },
      unconfirmed: () => {
        let n = 0
        for (const written of unconfirmed) n += written.packets.length
        return n
      },
      held: () => unconfirmed.flatMap((written) => written.packets),
      settle: Effect.suspend(() => {
        if (unconfirmed.length === 0) return Effect.void
        return Effect.andThen(resend, Effect.mapError(client.finish(finishTimeout), fail)).pipe(
          Effect.andThen(Effect.sync(() => {
            for (const written of unconfirmed.splice(0)) listener?.confirmed(written.packets)
          }))
        )
      })
    }
  }
}

export const make = (url: SyslogDrainUrl): Effect.Effect<DrainSink, DrainError> => {
  const fail = fromTransport(url.display)
  switch (url.transport) {
    case "tcp":
    case "tls":
      return Effect.map(DrainSettings, (configured) => {
        const stallTimeout = configured.stallTimeout ?? defaultSettings.stallTimeout
        return {
          probe: TcpClient.probe({ host: url.host, port: url.port, timeout: PROBE_TIMEOUT }),
          sender: Effect.map(
            TcpClient.client({
              host: url.host,
              port: url.port,
              connectTimeout: CONNECT_TIMEOUT,
              stallTimeout,
              tls: url.transport === "tls" ? Tls.clientOptions(url.host, { ca: url.ca, insecure: url.insecure }) : undefined
            }),
            (client) => confirmingSender(client, (packets) => encodeBatch(packets, url.framing), fail, stallTimeout)
          )
        }
      })
    case "udp":
      return Effect.succeed({
        maxWorkers: 1,
        sender: Effect.map(
          Udp.client({ host: url.host, port: url.port, sendTimeout: WRITE_TIMEOUT }),
          (client) => ({
            send: (batch) =>
              Effect.mapError(
                client.send(batch.map((packet) => datagram(Rfc5424.format(packet), MAX_DATAGRAM_BYTES))),
                fail
              )
          })
        )
      })
    case "http":
    case "https":
      return Effect.succeed({
        // As the original, which POSTed what had gathered every second.
        settings: { batchTimeout: Duration.seconds(1) },
        probe: httpProbe(url.url),
        sender: Effect.map(
          Http.client({
            url: url.url,
            display: url.display,
            tls: { ca: url.ca, insecure: url.insecure },
            timeout: WRITE_TIMEOUT
          }),
          (client) => {
            const frameIds = new WeakMap<ReadonlyArray<LogPacket>, string>()
            return {
              send: (batch) => {
                const logplex = url.framing === "octet-counting"
                let frameId = frameIds.get(batch)
                if (frameId === undefined) {
                  // The same id on every retry of this batch, so a receiver can drop a repeat.
                  frameId = randomUUID()
                  frameIds.set(batch, frameId)
                }
                const headers: Record<string, string> = logplex
                  ? {
                    "content-type": "application/logplex-1",
                    "logplex-msg-count": String(batch.length),
                    "logplex-frame-id": frameId
                  }
                  : { "content-type": "application/syslog" }
                return client.post(encodeBatch(batch, url.framing), headers).pipe(
                  Effect.mapError(fail),
                  Effect.flatMap((response) => {
                    const error = fromHttpStatus(url.display, response.status, response.body, secretsOf(url.endpoint))
                    return error === undefined ? Effect.void : Effect.fail(error)
                  })
                )
              }
            }
          }
        )
      })
  }
}
