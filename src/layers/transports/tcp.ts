/**
 * TCP, plain or with TLS, for inputs: a listening server. (Drains' connections: tcpClient.ts.)
 *
 * The server hands each connection's bytes over by pull: nothing is read until the input asks, so
 * when logtrain is saturated the kernel's receive window closes and the sender slows down, with no
 * buffering in between.
 *
 * TLS only changes how a connection starts: the server upgrades each accepted socket before any
 * byte is read (tls.ts builds the options); everything after that is the same code.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import { Effect, Option, Redacted, Scope } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import { Socket } from "effect/socket"
import { describeCause, TransportError } from "./TransportError.ts"

export interface ServerTls {
  readonly key: Redacted.Redacted<string>
  readonly cert: string
  /** When set, clients must present a certificate this CA signed. */
  readonly ca?: string | undefined
}

export interface ServerOptions {
  readonly host: string
  readonly port: number
  /** Serve TLS: each accepted connection is upgraded before any byte is read. */
  readonly tls?: ServerTls | undefined
}

/** One accepted connection, as an input sees it. */
export interface InboundConnection {
  /** The peer, `address:port`. */
  readonly peer: string
  /** The peer's address alone, e.g. for RFC 3164 lines without a hostname. */
  readonly peerAddress: string
  /** The next chunks of bytes; fails with `Closed` when the peer is done. */
  readonly read: Effect.Effect<NonEmptyReadonlyArray<Uint8Array>, TransportError>
}

export interface Server {
  /** The bound port (useful when asked for port 0). */
  readonly port: number
}

/**
 * Listens until the scope closes, running `handle` for each connection in its own fiber. Closing
 * stops accepting and interrupts the handlers. With TLS, a client that fails the handshake (an
 * untrusted certificate, none when one is required, not speaking TLS) is dropped and reported
 * through `onRejected`.
 */
export const serve = <R>(
  options: ServerOptions,
  handle: (connection: InboundConnection) => Effect.Effect<void, never, R>,
  onRejected: (error: TransportError) => Effect.Effect<void> = () => Effect.void
): Effect.Effect<Server, TransportError, Scope.Scope | R> =>
  Effect.gen(function*() {
    const address = `${options.host}:${options.port}`
    const server = yield* NodeSocketServer.make({ host: options.host, port: options.port }).pipe(
      Effect.mapError((error) =>
        new TransportError({ reason: "Listen", address, detail: describeCause(error.reason.cause) })
      )
    )
    const tls = options.tls
    yield* server.run((socket) =>
      Effect.gen(function*() {
        // The server provides the Node socket of each connection; it is not in the handler's type.
        const net = Option.getOrUndefined(yield* Effect.serviceOption(NodeSocket.NetSocket))
        const peerAddress = net?.remoteAddress ?? "unknown"
        const peer = `${peerAddress}:${net?.remotePort ?? 0}`
        const reader = yield* socket.reader
        if (tls !== undefined) {
          const upgraded = yield* Effect.result(reader.upgrade({
            key: tls.key,
            cert: tls.cert,
            ca: tls.ca,
            requestCert: tls.ca !== undefined,
            rejectUnauthorized: tls.ca !== undefined
          }))
          if (upgraded._tag === "Failure") {
            const cause = upgraded.failure.reason._tag === "SocketUpgradeError" ? upgraded.failure.reason.cause : upgraded.failure
            return yield* onRejected(
              new TransportError({ reason: "Connect", address: peer, detail: `TLS handshake failed: ${describeCause(cause)}` })
            )
          }
        }
        yield* handle({
          peer,
          peerAddress,
          // A socket without an encoding reads bytes.
          read: Effect.mapError(reader.pull as Effect.Effect<NonEmptyReadonlyArray<Uint8Array>, Socket.SocketError>, (error) =>
            new TransportError({
              reason: "Closed",
              address: peer,
              detail: error.reason._tag === "SocketCloseError" ? "closed by peer" : error.message
            }))
        })
      }).pipe(Effect.scoped, Effect.catch(() => Effect.void))
    ).pipe(Effect.forkScoped)
    const port = server.address._tag === "UnixPathAddress" ? options.port : server.address.port
    return { port }
  })
