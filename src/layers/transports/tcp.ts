/**
 * TCP, plain or with TLS, for inputs (a listening server) and drains (a client connection).
 *
 * The server hands each connection's bytes over by pull: nothing is read until the input asks, so
 * when logtrain is saturated the kernel's receive window closes and the sender slows down, with no
 * buffering in between.
 *
 * The client keeps one connection, opens it on first write and again after it breaks, and answers
 * each write only when Node has handed the bytes to the kernel — or with a TransportError the drain
 * can retry on. Whatever the receiver sends back is read and ignored, so a close is noticed early.
 *
 * TLS only changes how a connection starts: the server upgrades each accepted socket, the client
 * connects with TLS (tls.ts builds the options); everything after that is the same code.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import { Duration, Effect, Option, Redacted, Scope } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import { Socket } from "effect/socket"
import * as Net from "node:net"
import * as Tls from "node:tls"
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

export interface ClientOptions {
  readonly host: string
  readonly port: number
  readonly connectTimeout: Duration.Duration
  /** A write that has not reached the kernel by then fails, and the connection is dropped. */
  readonly writeTimeout: Duration.Duration
  /** Connect with TLS, with these options (CA, servername, verification). */
  readonly tls?: Tls.ConnectionOptions | undefined
}

export interface Client {
  /** Writes, connecting first if there is no open connection. */
  readonly write: (data: string | Uint8Array) => Effect.Effect<void, TransportError>
  readonly isConnected: () => boolean
}

/** A client connection that lives until the scope closes (then it is ended gracefully). */
export const client = (options: ClientOptions): Effect.Effect<Client, never, Scope.Scope> =>
  Effect.gen(function*() {
    const address = `${options.host}:${options.port}`
    let socket: Net.Socket | undefined

    const connect = Effect.callback<Net.Socket, TransportError>((resume) => {
      const s = options.tls === undefined
        ? Net.createConnection({ host: options.host, port: options.port })
        : Tls.connect({ ...options.tls, host: options.host, port: options.port })
      const timer = setTimeout(() => {
        s.destroy()
        resume(Effect.fail(new TransportError({ reason: "Timeout", address, detail: "connect timed out" })))
      }, Duration.toMillis(options.connectTimeout))
      const onError = (error: Error) => {
        clearTimeout(timer)
        s.destroy()
        const detail = options.tls !== undefined && isTlsError(error)
          ? `TLS handshake failed: ${describeCause(error)}`
          : describeCause(error)
        resume(Effect.fail(new TransportError({ reason: "Connect", address, detail })))
      }
      s.once("error", onError)
      s.once(options.tls === undefined ? "connect" : "secureConnect", () => {
        clearTimeout(timer)
        s.off("error", onError)
        s.setNoDelay(true)
        // Errors surface on the next write; a close or end means: connect again next time.
        s.on("error", () => {})
        s.on("end", () => s.destroy())
        s.on("close", () => {
          if (socket === s) socket = undefined
        })
        s.on("data", () => {})
        resume(Effect.succeed(s))
      })
      return Effect.sync(() => {
        clearTimeout(timer)
        s.destroy()
      })
    })

    const writeTo = (s: Net.Socket, data: string | Uint8Array) =>
      Effect.callback<void, TransportError>((resume) => {
        s.write(data, (error) => {
          if (error === undefined || error === null) return resume(Effect.void)
          s.destroy()
          resume(Effect.fail(new TransportError({ reason: "Write", address, detail: describeCause(error) })))
        })
      }).pipe(
        Effect.timeoutOrElse({
          duration: options.writeTimeout,
          orElse: () =>
            Effect.suspend(() => {
              s.destroy()
              return Effect.fail(
                new TransportError({ reason: "Timeout", address, detail: "the receiver is not reading" })
              )
            })
        })
      )

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        socket?.end()
        socket = undefined
      })
    )

    return {
      isConnected: () => socket !== undefined && !socket.destroyed,
      // Not Effect.gen: a generator from a function made for each write keeps the data alive
      // until the next full GC (see Router.ts).
      write: (data) =>
        Effect.suspend(() =>
          socket === undefined || socket.destroyed || socket.writableEnded
            ? Effect.flatMap(connect, (s) => {
              socket = s
              return writeTo(s, data)
            })
            : writeTo(socket, data)
        )
    }
  })

/** Certificate and handshake errors, as opposed to the network ones (refused, unreachable). */
const isTlsError = (error: Error): boolean => {
  const code = (error as { code?: unknown }).code
  return typeof code === "string" &&
    (code.startsWith("ERR_TLS") || code.startsWith("ERR_SSL") || /CERT|SELF_SIGNED|UNABLE_TO|DEPTH_ZERO/.test(code))
}
