/**
 * UDP, for inputs (a bound socket) and drains (a connected socket).
 *
 * UDP has no flow control: a receiver that falls behind loses datagrams. The server keeps a bounded
 * buffer of datagrams received but not yet read and counts what it had to drop, so the loss is
 * visible instead of silent.
 */
import * as NodeDatagramSocket from "@effect/platform-node/NodeDatagramSocket"
import { Duration, Effect, Scope } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as NetAddress from "effect/net/NetAddress"
import * as Dgram from "node:dgram"
import * as Net from "node:net"
import { describeCause, TransportError } from "./TransportError.ts"

export interface Datagram {
  readonly payload: Uint8Array
  /** The sender's address (no port). */
  readonly from: string
}

export interface ServerOptions {
  readonly host: string
  readonly port: number
  /** Datagrams buffered between the socket and the reader before new ones are dropped. */
  readonly bufferedDatagrams: number
}

export interface Server {
  readonly port: number
  /** The next datagrams; waits for at least one. */
  readonly read: Effect.Effect<NonEmptyReadonlyArray<Datagram>, TransportError>
  /** Datagrams dropped so far because the buffer was full. */
  readonly dropped: () => number
}

/** Binds until the scope closes. */
export const bind = (options: ServerOptions): Effect.Effect<Server, TransportError, Scope.Scope> =>
  Effect.gen(function*() {
    const address = `${options.host}:${options.port}`
    const socket = yield* NodeDatagramSocket.make({
      bind: { address: options.host, port: options.port },
      kernelReceiveBufferSize: 4 * 1024 * 1024,
      receiveBuffer: { capacity: options.bufferedDatagrams, strategy: "dropping" }
    })
    const reader = yield* socket.reader.pipe(
      Effect.mapError((error) =>
        new TransportError({
          reason: "Listen",
          address,
          // The socket error's own message may be empty; its cause (the Node error) says why.
          detail: error.message || describeCause((error as { readonly reason?: { readonly cause?: unknown } }).reason?.cause ?? error)
        })
      )
    )
    return {
      port: reader.address.port,
      dropped: reader.dropped,
      read: reader.pull.pipe(
        Effect.map((datagrams) => {
          const out = datagrams.map((d) => ({ payload: d.payload, from: NetAddress.formatIp(d.address.address) }))
          return out as unknown as NonEmptyReadonlyArray<Datagram>
        }),
        Effect.mapError((error) => new TransportError({ reason: "Closed", address, detail: error.message }))
      )
    }
  })

export interface ClientOptions {
  readonly host: string
  readonly port: number
  readonly sendTimeout: Duration.Duration
}

export interface Client {
  /** Sends each payload as one datagram, in order. */
  readonly send: (payloads: ReadonlyArray<Uint8Array>) => Effect.Effect<void, TransportError>
}

/**
 * A socket connected to the receiver (so the name is resolved once and ICMP errors are reported),
 * made again after an error.
 */
export const client = (options: ClientOptions): Effect.Effect<Client, never, Scope.Scope> =>
  Effect.gen(function*() {
    const address = `${options.host}:${options.port}`
    let socket: Dgram.Socket | undefined

    const open = Effect.callback<Dgram.Socket, TransportError>((resume) => {
      const s = Dgram.createSocket(Net.isIPv6(options.host) ? "udp6" : "udp4")
      const onError = (error: Error) => {
        s.close()
        resume(Effect.fail(new TransportError({ reason: "Connect", address, detail: describeCause(error) })))
      }
      s.once("error", onError)
      s.connect(options.port, options.host, () => {
        s.off("error", onError)
        s.on("error", () => {
          if (socket === s) socket = undefined
          s.close()
        })
        resume(Effect.succeed(s))
      })
    })

    const sendAll = (s: Dgram.Socket, payloads: ReadonlyArray<Uint8Array>) =>
      Effect.callback<void, TransportError>((resume) => {
        let left = payloads.length
        let failed = false
        for (const payload of payloads) {
          s.send(payload, (error) => {
            if (failed) return
            if (error) {
              failed = true
              if (socket === s) socket = undefined
              s.close()
              return resume(Effect.fail(new TransportError({ reason: "Write", address, detail: describeCause(error) })))
            }
            if (--left === 0) resume(Effect.void)
          })
        }
        if (payloads.length === 0) resume(Effect.void)
      }).pipe(
        Effect.timeoutOrElse({
          duration: options.sendTimeout,
          orElse: () => Effect.fail(new TransportError({ reason: "Timeout", address, detail: "send timed out" }))
        })
      )

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        socket?.close()
        socket = undefined
      })
    )

    return {
      // Not Effect.gen: a generator from a function made for each send keeps the payloads alive
      // until the next full GC (see Router.ts).
      send: (payloads) =>
        Effect.suspend(() =>
          socket === undefined
            ? Effect.flatMap(open, (s) => {
              socket = s
              return sendAll(s, payloads)
            })
            : sendAll(socket, payloads)
        )
    }
  })
