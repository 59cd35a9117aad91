/**
 * TCP, plain or with TLS, for inputs: a listening server. (Drains' connections: tcpClient.ts.)
 *
 * The server hands each connection's bytes over by pull: nothing is read until the input asks, so
 * when logtrain is saturated the kernel's receive window closes and the sender slows down, with no
 * buffering in between. It holds every connection to limits, each counted when it bites: how many
 * may be open (TLS handshakes included), how long a peer may be silent while it is read, how long
 * an unfinished frame may wait for its end, how long a TLS handshake may take. Silence while the
 * input is not reading (backpressure) never counts against the peer.
 *
 * With TLS, a node `tls.Server` runs each handshake (connections are handed to it once counted),
 * so client certificates are verified by Node the way it verifies them for any TLS server; with a
 * CA, a client whose certificate does not chain to it (or has expired, or is missing) is refused
 * here, explicitly, from `authorized` and `authorizationError`.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import { Duration, Effect, FiberSet, Redacted, Scope } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import { Socket } from "effect/socket"
import * as Net from "node:net"
import * as Tls from "node:tls"
import { describeCause, TransportError } from "./TransportError.ts"

export interface ServerTls {
  readonly key: Redacted.Redacted<string>
  readonly cert: string
  /** When set, clients must present a certificate this CA signed, valid now. */
  readonly ca?: string | undefined
}

/** What a server allows each connection; a limit of 0 (or a zero duration) is no limit. */
export interface ServerLimits {
  /** Connections open at once, TLS handshakes included; one more is closed as soon as it is accepted. */
  readonly maxConnections: number
  /** How long a peer may send nothing while its bytes are asked for. */
  readonly idleTimeout: Duration.Duration
  /** How long, in all, a connection holding an unfinished frame may wait for the rest of it. */
  readonly frameTimeout: Duration.Duration
  /** How long a TLS handshake may take, from the connection on. */
  readonly handshakeTimeout: Duration.Duration
}

export type LimitReason = "connection_limit" | "idle_timeout" | "frame_timeout" | "handshake_timeout"

export const limitReasons: ReadonlyArray<LimitReason> = ["connection_limit", "idle_timeout", "frame_timeout", "handshake_timeout"]

export interface ServerOptions {
  readonly host: string
  readonly port: number
  /** Serve TLS: each accepted connection does its handshake before any byte is read. */
  readonly tls?: ServerTls | undefined
  readonly limits: ServerLimits
}

/** What happens to connections that the server closes, for the input to count and report. */
export interface ServerEvents {
  /** A connection refused or closed because `reason`'s limit bit. */
  readonly limited: (reason: LimitReason) => void
  /** A TLS client refused at the handshake (an untrusted, expired or missing certificate, not TLS). */
  readonly rejected: (detail: string) => void
}

/** One accepted connection, as an input sees it. */
export interface InboundConnection {
  /** The peer, `address:port`. */
  readonly peer: string
  /** The peer's address alone, e.g. for RFC 3164 lines without a hostname. */
  readonly peerAddress: string
  /** The next chunks of bytes; fails with `Closed` when the peer is done (or a limit closed it). */
  readonly read: Effect.Effect<NonEmptyReadonlyArray<Uint8Array>, TransportError>
  /**
   * Says whether the reader holds the start of a frame it has not seen the end of. While it does,
   * the time spent waiting for bytes adds up against `frameTimeout`; it starts again at zero with
   * the next frame.
   */
  readonly holdingFrame: (holding: boolean) => void
  /** Since when (Date.now()) a read has been waiting for the peer; 0 while none waits. */
  readonly waitingSince: () => number
  /** Closes the connection (not counted as a limit): a read waiting fails with `Closed`. */
  readonly close: () => void
}

export interface Server {
  /** The bound port (useful when asked for port 0). */
  readonly port: number
  /** Connections open now, TLS handshakes included. */
  readonly connections: () => number
}

/** A connection's state, as the limits see it. */
interface Tracked {
  /** The socket to destroy to close the connection (with TLS, the raw one: it ends both). */
  readonly raw: Net.Socket
  readonly openedAt: number
  handshaking: boolean
  /** When the pending read began waiting for the peer; 0 when no read waits. */
  waitingSince: number
  holdingFrame: boolean
  /** Time spent waiting for the rest of the frame held, before the current wait. */
  frameWaited: number
  /** Why the server closed it, once it has. */
  closedFor: LimitReason | "refused" | undefined
}

const toMillis = (duration: Duration.Duration) => {
  const millis = Duration.toMillis(duration)
  return Number.isFinite(millis) && millis > 0 ? millis : Number.POSITIVE_INFINITY
}

/**
 * Listens until the scope closes, running `handle` for each connection in its own fiber. Closing
 * stops accepting, interrupts the handlers and closes every connection still open.
 */
export const serve = <R>(
  options: ServerOptions,
  handle: (connection: InboundConnection) => Effect.Effect<void, never, R>,
  events: ServerEvents
): Effect.Effect<Server, TransportError, Scope.Scope | R> =>
  Effect.gen(function*() {
    const address = `${options.host}:${options.port}`
    const limits = options.limits
    const maxConnections = limits.maxConnections > 0 ? limits.maxConnections : Number.POSITIVE_INFINITY
    const idleMs = toMillis(limits.idleTimeout)
    const frameMs = toMillis(limits.frameTimeout)
    const handshakeMs = options.tls === undefined ? Number.POSITIVE_INFINITY : toMillis(limits.handshakeTimeout)
    const tracked = new Set<Tracked>()
    const run = yield* FiberSet.makeRuntime<R>()

    const closeFor = (connection: Tracked, reason: LimitReason) => {
      if (connection.closedFor !== undefined) return
      connection.closedFor = reason
      events.limited(reason)
      connection.raw.destroy()
    }

    const start = (connection: Tracked, socket: Net.Socket) => {
      const peerAddress = socket.remoteAddress ?? "unknown"
      const peer = `${peerAddress}:${socket.remotePort ?? 0}`
      run(Effect.scoped(Effect.gen(function*() {
        const reader = yield* (yield* NodeSocket.fromDuplex(
          Effect.acquireRelease(Effect.succeed(socket), (s) => Effect.sync(() => s.destroy()))
        )).reader
        // A socket without an encoding reads bytes.
        const pull = reader.pull as Effect.Effect<NonEmptyReadonlyArray<Uint8Array>, Socket.SocketError>
        const waited = Effect.sync(() => {
          if (connection.holdingFrame) connection.frameWaited += Date.now() - connection.waitingSince
          connection.waitingSince = 0
        })
        yield* handle({
          peer,
          peerAddress,
          read: Effect.suspend(() => {
            connection.waitingSince = Date.now()
            return pull
          }).pipe(
            Effect.ensuring(waited),
            Effect.mapError((error) =>
              new TransportError({
                reason: connection.closedFor === undefined ? "Closed" : "Timeout",
                address: peer,
                detail: connection.closedFor !== undefined
                  ? `closed by logtrain: ${connection.closedFor}`
                  : error.reason._tag === "SocketCloseError"
                  ? "closed by peer"
                  : error.message
              })
            )
          ),
          holdingFrame: (holding) => {
            connection.holdingFrame = holding
            if (!holding) connection.frameWaited = 0
          },
          waitingSince: () => connection.waitingSince,
          close: () => connection.raw.destroy()
        })
      })).pipe(Effect.catchCause(() => Effect.void)))
    }

    // With TLS, a tls.Server that never listens does the handshakes: connections are handed to it
    // (`emit("connection")`, as Node documents for injecting connections) once counted here.
    const tlsOptions = options.tls
    const byPeer = new Map<string, Tracked>()
    let lastTlsError = "closed during the TLS handshake"
    const tlsServer = tlsOptions === undefined ? undefined : Tls.createServer({
      key: Redacted.value(tlsOptions.key),
      cert: tlsOptions.cert,
      ...(tlsOptions.ca === undefined ? {} : { ca: tlsOptions.ca, requestCert: true }),
      // Checked below, so that a refusal is counted and reported rather than a silent close.
      rejectUnauthorized: false,
      // Node's own is an inactivity timeout (a client sending a byte now and then keeps it from
      // ever firing); the sweep below ends a handshake at its deadline whatever the client does.
      handshakeTimeout: 0
    })
    tlsServer?.on("tlsClientError", (error) => {
      lastTlsError = describeCause(error)
    })
    tlsServer?.on("secureConnection", (socket: Tls.TLSSocket) => {
      const connection = byPeer.get(`${socket.remoteAddress}:${socket.remotePort}`)
      if (connection === undefined || connection.closedFor !== undefined) {
        socket.destroy()
        return
      }
      connection.handshaking = false
      if (tlsOptions?.ca !== undefined && !socket.authorized) {
        connection.closedFor = "refused"
        const certificate = socket.getPeerCertificate()
        const presented = certificate !== null && Object.keys(certificate).length > 0
        events.rejected(
          presented
            ? `client certificate refused: ${String(socket.authorizationError ?? "not trusted")}`
            : "no client certificate (SYSLOG_TLS_CA_PEM requires one)"
        )
        socket.destroy()
        return
      }
      socket.pause()
      start(connection, socket)
    })

    const server = Net.createServer({ pauseOnConnect: tlsServer === undefined })
    server.on("connection", (raw: Net.Socket) => {
      if (tracked.size >= maxConnections) {
        events.limited("connection_limit")
        raw.destroy()
        return
      }
      const connection: Tracked = {
        raw,
        openedAt: Date.now(),
        handshaking: tlsServer !== undefined,
        waitingSince: 0,
        holdingFrame: false,
        frameWaited: 0,
        closedFor: undefined
      }
      tracked.add(connection)
      const key = `${raw.remoteAddress}:${raw.remotePort}`
      raw.on("error", () => {})
      raw.once("close", () => {
        tracked.delete(connection)
        if (byPeer.get(key) === connection) byPeer.delete(key)
        // A handshake that ended without a secure connection, and not by a limit: refused.
        if (connection.handshaking && connection.closedFor === undefined) events.rejected(`TLS handshake failed: ${lastTlsError}`)
      })
      if (tlsServer === undefined) return start(connection, raw)
      byPeer.set(key, connection)
      tlsServer.emit("connection", raw)
    })

    yield* Effect.acquireRelease(
      Effect.callback<void, TransportError>((resume) => {
        const onError = (error: Error) =>
          resume(Effect.fail(new TransportError({ reason: "Listen", address, detail: describeCause(error) })))
        server.once("error", onError)
        server.listen({ host: options.host, port: options.port }, () => {
          server.off("error", onError)
          resume(Effect.void)
        })
      }),
      () =>
        Effect.callback<void>((resume) => {
          server.close(() => resume(Effect.void))
          for (const connection of tracked) connection.raw.destroy()
        })
    )

    // One sweep over the connections enforces the timeouts (no timer per connection).
    const shortest = Math.min(idleMs, frameMs, handshakeMs)
    if (Number.isFinite(shortest)) {
      const sweep = setInterval(() => {
        const now = Date.now()
        for (const connection of tracked) {
          if (connection.handshaking) {
            if (now - connection.openedAt > handshakeMs) closeFor(connection, "handshake_timeout")
            continue
          }
          if (connection.waitingSince === 0) continue
          const waiting = now - connection.waitingSince
          if (waiting > idleMs) closeFor(connection, "idle_timeout")
          else if (connection.holdingFrame && connection.frameWaited + waiting > frameMs) closeFor(connection, "frame_timeout")
        }
      }, Math.min(1000, Math.max(50, shortest / 4)))
      sweep.unref()
      yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(sweep)))
    }

    const bound = server.address()
    return { port: typeof bound === "object" && bound !== null ? bound.port : options.port, connections: () => tracked.size }
  })
