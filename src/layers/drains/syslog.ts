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
import type { SyslogDrainUrl } from "../../domain/DrainUrl.ts"
import type { LogPacket } from "../../domain/LogPacket.ts"
import { FrameWriter, type Framing } from "../../domain/syslog/Framing.ts"
import * as Rfc5424 from "../../domain/syslog/Rfc5424.ts"
import * as Http from "../transports/http.ts"
import * as Tcp from "../transports/tcp.ts"
import * as Tls from "../transports/tls.ts"
import * as Udp from "../transports/udp.ts"
import { type DrainError, fromHttpStatus, fromTransport } from "./DrainError.ts"
import type { DrainSink } from "./DrainRunner.ts"

/** Largest datagram a UDP drain sends (RFC 5426 §3.2). */
export const MAX_DATAGRAM_BYTES = 2048

const CONNECT_TIMEOUT = Duration.seconds(10)
const WRITE_TIMEOUT = Duration.seconds(30)

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

export const make = (url: SyslogDrainUrl): Effect.Effect<DrainSink, DrainError> => {
  const fail = fromTransport(url.display)
  switch (url.transport) {
    case "tcp":
    case "tls":
      return Effect.succeed({
        sender: Effect.map(
          Tcp.client({
            host: url.host,
            port: url.port,
            connectTimeout: CONNECT_TIMEOUT,
            writeTimeout: WRITE_TIMEOUT,
            tls: url.transport === "tls" ? Tls.clientOptions(url.host, { ca: url.ca, insecure: url.insecure }) : undefined
          }),
          (client) => ({
            send: (batch) => Effect.mapError(client.write(encodeBatch(batch, url.framing)), fail)
          })
        )
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
                    const error = fromHttpStatus(url.display, response.status, response.body)
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
