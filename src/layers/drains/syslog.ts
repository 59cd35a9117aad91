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
import { MemoryBudget } from "../MemoryBudget.ts"
import { type DrainError, fromHttpStatus, fromTransport } from "./DrainError.ts"
import { type ConfirmationListener, type DrainSink, DrainSettings, defaultSettings, type Held, held, type Sender } from "./DrainSink.ts"

/** Largest datagram a UDP drain sends (RFC 5426 §3.2). */
export const MAX_DATAGRAM_BYTES = 2048

const CONNECT_TIMEOUT = Duration.seconds(10)
/** How long an HTTP receiver may take to answer. */
const WRITE_TIMEOUT = Duration.seconds(30)
const PROBE_TIMEOUT = Duration.seconds(2)

/**
 * Plain TCP syslog has no acknowledgements, and the kernels between logtrain and a receiver hold
 * megabytes: a line written may go unread for long (a slow receiver), and be lost if the receiver
 * then dies. The one thing TCP tells for sure is a graceful close: the receiver closes its side of
 * a connection once it has read everything on it — and a kernel closing a socket with unread data
 * resets it instead. So what is written is held (its bytes and its packets' receipts, not the
 * packets) until the connection it went on has been closed cleanly: by logtrain once HOLD_BYTES
 * are held or the drain has had nothing to send for IDLE_MS, or by the receiver. If the connection
 * fails first, what it held is written again first on the next one (at least once; counted as
 * resent, and no more than what was held).
 */
const HOLD_BYTES = 2 * 1024 * 1024
const IDLE_MS = 1000
/** Room for a batch past what is held. */
const BATCH_ROOM = 2 * 1024 * 1024

/**
 * What one connection holds before it is confirmed, under a memory budget: a 32nd of the drains'
 * share, at least 256 KiB, at most HOLD_BYTES. Each lane of each syslog drain keeps a buffer of
 * up to this and a batch: at the 128Mi envelope's budget (21 MiB for drains), 4 lanes of the
 * 2 MiB default held 16.8 MB of buffers (a heap snapshot, npm run bench -- --only stress).
 */
export const holdBytesFor = (drainsShare: number): number => Math.min(HOLD_BYTES, Math.max(256 * 1024, Math.floor(drainsShare / 32)))

/**
 * The batch's framed messages, in a FrameWriter: one write per batch. A packet received as RFC
 * 5424 is sent as it came; another as its formatted header and its message, side by side.
 */
export const frameBatch = (batch: ReadonlyArray<LogPacket>, framing: Framing): FrameWriter => {
  const writer = new FrameWriter(framing)
  // (Indexed: no iterator objects, see DrainSink.held.)
  for (let i = 0; i < batch.length; i++) {
    const packet = batch[i]!
    if (packet.raw !== undefined) writer.addBytes(packet.raw)
    else if (packet.rfc5424 !== undefined) writer.add(packet.rfc5424)
    else writer.add(Rfc5424.header(packet), packet.message)
  }
  return writer
}

/** The batch as the bytes of its framed messages (see frameBatch). */
export const encodeBatch = (batch: ReadonlyArray<LogPacket>, framing: Framing): Buffer => frameBatch(batch, framing).take()

/**
 * Where a confirming sender keeps the bytes it wrote and holds: one buffer, filled from its start
 * and used again once all it holds is confirmed, grown as needed up to its most (what a connection holds, and a batch) and let go once
 * the drain is idle. (A new buffer for every batch, each held for a while, made V8 collect garbage
 * far more often: external memory counts toward its heap's growth.)
 */
export class HeldBytes {
  private buffer: Buffer | undefined = undefined
  private used = 0
  /** Most bytes its buffer has. */
  private readonly max: number

  constructor(max = HOLD_BYTES + BATCH_ROOM) {
    this.max = max
  }

  /** Bytes of the buffer it keeps (0: none). */
  get allocated(): number {
    return this.buffer?.length ?? 0
  }

  /** The writer's bytes, copied in; a buffer of their own if they would not fit even alone. */
  put(writer: FrameWriter): Buffer {
    const n = writer.length
    if (n > this.max) return writer.take()
    if (this.buffer === undefined || this.used + n > this.buffer.length) {
      // A fresh buffer: what the old one holds stays valid (its views keep it) until confirmed.
      let size = Math.max(64 * 1024, (this.buffer?.length ?? 0) * 2)
      while (size < n) size *= 2
      this.buffer = Buffer.allocUnsafeSlow(Math.min(size, this.max))
      this.used = 0
    }
    const view = writer.copyTo(this.buffer, this.used)
    this.used += n
    return view
  }

  /**
   * `view`, the last bytes put, was not written after all (its connection could not be made): its
   * room is used again, and with nothing else held the buffer is let go. (A drain whose receiver is
   * down put each retry's copy in, and kept a buffer of up to its most while it retried: measured,
   * 5 such drains held ~15 MB, npm run bench -- --only stress.)
   */
  takeBack(view: Uint8Array, nothingElseHeld: boolean): void {
    if (this.buffer === undefined || view.buffer !== this.buffer.buffer) return
    if (view.byteOffset - this.buffer.byteOffset + view.byteLength === this.used) this.used -= view.byteLength
    if (this.used === 0 && nothingElseHeld) this.buffer = undefined
  }

  /** Nothing is held any more: filled from the start again (or let go). */
  empty(release: boolean): void {
    this.used = 0
    if (release) this.buffer = undefined
  }
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

/** A batch written and not yet known to have arrived: its bytes (to write again) and what it holds. */
interface Written {
  readonly bytes: Uint8Array
  readonly held: Held
  /** The connection it was written on. */
  connection: number
}

/**
 * A sender over a TCP client that confirms by graceful closes (see HOLD_BYTES). Closing waits up
 * to `finishTimeout` for the receiver to have read everything: a slow receiver may take long to
 * read what the kernels hold (4 MB at 400 KB/s is 10 s), and giving up with a reset would lose
 * what logtrain's kernel still held; so it is the stall timeout, as for a write.
 */
export const confirmingSender = (
  client: TcpClient.Client,
  frame: (packets: ReadonlyArray<LogPacket>) => FrameWriter,
  fail: (error: TransportError) => DrainError,
  finishTimeout: Duration.Duration,
  holdBytes = HOLD_BYTES
): Sender => {
  let listener: ConfirmationListener | undefined
  let unconfirmed: Array<Written> = []
  let heldBytes = 0
  let idle: ReturnType<typeof setTimeout> | undefined
  const ring = new HeldBytes(holdBytes + Math.min(BATCH_ROOM, holdBytes))

  const confirmAll = () => {
    for (const written of unconfirmed) listener?.confirmed(written.held)
    unconfirmed = []
    heldBytes = 0
    ring.empty(false)
  }
  client.onDown(() => {
    // A connection over but for our own graceful close: what was written on it and not confirmed
    // is written again on the next one — even after a clean close by the receiver (FIN). Its FIN
    // says it read what had arrived by then, not what was still on its way: that is answered with
    // a reset after the FIN, once our side has stopped reading and cannot hear it (lost so before:
    // test/layers/drains/syslog.latency.test.ts). At least once: written again, counted as resent.
    if (unconfirmed.length > 0) listener?.settleSoon()
  })
  /** After IDLE_MS without a write, what is held is confirmed (by a graceful close), and the buffer let go. */
  const armIdle = () => {
    clearTimeout(idle)
    idle = setTimeout(() => {
      if (client.pending()) return
      if (unconfirmed.length > 0) listener?.settleSoon()
      else ring.empty(true)
    }, IDLE_MS)
    idle.unref()
  }
  const write = (bytes: Uint8Array, what: Held) =>
    Effect.map(
      Effect.mapError(client.write(bytes), (error) => {
        ring.takeBack(bytes, unconfirmed.length === 0)
        return fail(error)
      }),
      () => {
        unconfirmed.push({ bytes, held: what, connection: client.connection().id })
        heldBytes += bytes.byteLength
        armIdle()
      }
    )
  /**
   * What a failed connection had not confirmed, written again first on a new one — once it is
   * known whether a connection the receiver closed was closed cleanly (then it had it all).
   */
  const resend = Effect.andThen(client.quiet, () => {
    const connection = client.connection()
    const stale = unconfirmed.filter((written) => written.connection !== connection.id || !connection.up)
    if (stale.length === 0) return Effect.void
    const bytes = stale.length === 1 ? stale[0]!.bytes : Buffer.concat(stale.map((written) => written.bytes))
    const count = stale.reduce((n, written) => n + written.held.count, 0)
    return Effect.map(Effect.mapError(client.write(bytes), fail), () => {
      const now = client.connection().id
      for (const written of stale) written.connection = now
      listener?.resent(count)
      armIdle()
    })
  })
  /** A graceful close: once the receiver has closed its side, everything written on it arrived. */
  const finish = Effect.suspend(() => {
    if (unconfirmed.length === 0) return Effect.void
    return Effect.andThen(resend, Effect.mapError(client.finish(finishTimeout), fail)).pipe(
      Effect.andThen(Effect.sync(() => confirmAll()))
    )
  })
  return {
    // Once holdBytes are held, they are confirmed (a graceful close) before more is written.
    send: (batch) =>
      Effect.andThen(
        resend,
        Effect.suspend(() =>
          Effect.andThen(heldBytes >= holdBytes ? finish : Effect.void, Effect.suspend(() => write(ring.put(frame(batch)), held(batch))))
        )
      ),
    confirmsLater: {
      listen: (l) => {
        listener = l
      },
      unconfirmed: () => unconfirmed.reduce((n, written) => n + written.held.count, 0),
      held: () => unconfirmed.map((written) => written.held),
      settle: finish
    }
  }
}

export const make = (url: SyslogDrainUrl): Effect.Effect<DrainSink, DrainError> => {
  const fail = fromTransport(url.display)
  switch (url.transport) {
    case "tcp":
    case "tls":
      return Effect.map(Effect.all([DrainSettings, MemoryBudget]), ([configured, budget]) => {
        const stallTimeout = configured.stallTimeout ?? defaultSettings.stallTimeout
        const holdBytes = holdBytesFor(budget.drains.bytes)
        return {
          coalesce: true,
          probe: TcpClient.probe({ host: url.host, port: url.port, timeout: PROBE_TIMEOUT }),
          sender: Effect.map(
            TcpClient.client({
              host: url.host,
              port: url.port,
              connectTimeout: CONNECT_TIMEOUT,
              stallTimeout,
              tls: url.transport === "tls" ? Tls.clientOptions(url.host, { ca: url.ca, insecure: url.insecure }) : undefined
            }),
            (client) => confirmingSender(client, (packets) => frameBatch(packets, url.framing), fail, stallTimeout, holdBytes)
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
