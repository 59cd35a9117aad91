/**
 * A TCP connection for drains, plain or with TLS, kept open and opened again after it breaks.
 *
 * - A write resolves when Node has handed its bytes to the kernel. A receiver that is alive but
 *   not reading is backpressure, not a failure: the write simply waits — until no byte at all has
 *   moved for `stallTimeout`; then the connection is given up on with a reset (RST), which
 *   discards what our kernel still holds (a FIN would have it deliver the half-written frame at
 *   its end as if complete). What the receiver's kernel had already taken stays readable to it on
 *   Linux, and may end in half a frame; the reset that follows tells the receiver it is broken.
 * - Death is what shows it: a reset, an error, the receiver closing (what it sends is read and
 *   ignored, so a close is noticed at once), or TCP keepalive failing on an idle connection.
 *   Listeners are told whether it closed cleanly (FIN): a kernel closing a socket with unread data
 *   resets it, so a receiver that closed cleanly had read what had arrived — but not necessarily
 *   what was still on its way: the reset that answers that comes after the FIN, when this side
 *   has stopped reading and does not hear it.
 * - `finish` closes gracefully: FIN, then it waits for the receiver to close its side, which it
 *   does once it has read everything — the one acknowledgement plain TCP syslog has.
 *
 * Connections are numbered, so a user can tell that what it wrote on an earlier one may not have
 * arrived.
 */
import { Duration, Effect, Scope } from "effect"
import * as Net from "node:net"
import * as Tls from "node:tls"
import { describeCause, TransportError } from "./TransportError.ts"

export interface ClientOptions {
  readonly host: string
  readonly port: number
  readonly connectTimeout: Duration.Duration
  /** How long a write may move no byte before the connection is reset. */
  readonly stallTimeout: Duration.Duration
  /** Connect with TLS, with these options (CA, servername, verification). */
  readonly tls?: Tls.ConnectionOptions | undefined
}

export interface Connection {
  /** 1 for the first connection, then one more for each new one; 0 before any. */
  readonly id: number
  /** Still open: no error, reset or close seen. */
  readonly up: boolean
}

export interface Client {
  /** Writes, connecting first if there is no open connection. */
  readonly write: (data: Uint8Array) => Effect.Effect<void, TransportError>
  readonly connection: () => Connection
  /** Whether writes are waiting for the kernel to take them (the receiver is not keeping up). */
  readonly pending: () => boolean
  /** Ends the connection gracefully and waits (up to `timeout`) until the receiver has closed its side. */
  readonly finish: (timeout: Duration.Duration) => Effect.Effect<void, TransportError>
  /** Waits until connections the receiver closed are known to have closed cleanly or not (see onDown). */
  readonly quiet: Effect.Effect<void>
  /**
   * Called when a connection is over but for `finish`: `clean` when the receiver closed it (FIN,
   * having read what had arrived; what was on its way may not have); else (an error, a reset,
   * given up on) some may not have arrived.
   */
  readonly onDown: (listener: (connection: number, clean: boolean) => void) => void
}

/** How often a waiting write checks that bytes still move. */
const STALL_CHECK_MS = 1000
const KEEPALIVE_MS = 30_000

/** Tries a connection and closes it: whether the receiver can be reached (for a drain's recovery probe). */
export const probe = (options: { readonly host: string; readonly port: number; readonly timeout: Duration.Duration }): Effect.Effect<boolean> =>
  Effect.callback<boolean>((resume) => {
    const s = Net.createConnection({ host: options.host, port: options.port })
    const timer = setTimeout(() => done(false), Duration.toMillis(options.timeout))
    const done = (up: boolean) => {
      clearTimeout(timer)
      s.destroy()
      resume(Effect.succeed(up))
    }
    s.once("connect", () => done(true))
    s.once("error", () => done(false))
    return Effect.sync(() => {
      clearTimeout(timer)
      s.destroy()
    })
  })

/** One connection, and what is known of how it ends. */
interface Link {
  readonly socket: Net.Socket
  readonly id: number
  /** The receiver closed its side (FIN). */
  ended: boolean
  /** Listeners were told how it ended (or it is being closed by `finish`, which is not a failure). */
  told: boolean
}

/** How long a connection the receiver closed may take to close on our side, before it counts as reset. */
const CLOSING_TIMEOUT_MS = 5000

/** A client connection that lives until the scope closes (then it is ended gracefully). */
export const client = (options: ClientOptions): Effect.Effect<Client, never, Scope.Scope> =>
  Effect.gen(function*() {
    const address = `${options.host}:${options.port}`
    /** The connection writes go to. */
    let link: Link | undefined
    let lastId = 0
    let waiting = 0
    /** Connections the receiver closed whose outcome is not known yet, and who waits for them. */
    const closing = new Set<Link>()
    let closedWaiters: Array<() => void> = []
    const downListeners: Array<(connection: number, clean: boolean) => void> = []

    const tell = (l: Link, clean: boolean) => {
      if (link === l) link = undefined
      if (l.told) return
      l.told = true
      for (const listener of downListeners) listener(l.id, clean)
    }
    const closed = (l: Link) => {
      if (!closing.delete(l) || closing.size > 0) return
      for (const wake of closedWaiters.splice(0)) wake()
    }

    const connect = Effect.callback<Link, TransportError>((resume) => {
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
        s.setKeepAlive(true, KEEPALIVE_MS)
        const l: Link = { socket: s, id: ++lastId, ended: false, told: false }
        // The receiver closing (FIN) ends our side too (not half-open). Nothing more is written on
        // it; what was still on its way would be reset by the receiver's kernel: only a close with
        // no error is clean.
        s.on("end", () => {
          l.ended = true
          if (link === l) link = undefined
          if (l.told) return
          closing.add(l)
          setTimeout(() => {
            if (closing.has(l)) reset(l)
          }, CLOSING_TIMEOUT_MS).unref()
        })
        s.on("error", () => {})
        s.on("close", (hadError) => {
          tell(l, l.ended && !hadError)
          closed(l)
        })
        s.on("data", () => {})
        link = l
        resume(Effect.succeed(l))
      })
      return Effect.sync(() => {
        clearTimeout(timer)
        s.destroy()
      })
    })

    /** Gives a connection up without delivering what the kernels hold of it (no half frame arrives). */
    const reset = (l: Link) => {
      tell(l, false)
      closed(l)
      try {
        l.socket.resetAndDestroy()
      } catch {
        l.socket.destroy()
      }
    }

    const writeTo = (l: Link, data: Uint8Array) =>
      Effect.callback<void, TransportError>((resume) => {
        const s = l.socket
        waiting++
        let last = s.writableLength
        let still = 0
        const watch = setInterval(() => {
          // Backpressure until no byte has moved for stallTimeout: then the receiver is given up on.
          const now = s.writableLength
          still = now === last ? still + STALL_CHECK_MS : 0
          last = now
          if (still < Duration.toMillis(options.stallTimeout)) return
          clearInterval(watch)
          waiting--
          reset(l)
          resume(Effect.fail(
            new TransportError({ reason: "Timeout", address, detail: `the receiver took no byte for ${Duration.format(options.stallTimeout)}` })
          ))
        }, STALL_CHECK_MS)
        watch.unref()
        s.write(data, (error) => {
          clearInterval(watch)
          waiting--
          if (error === undefined || error === null) return resume(Effect.void)
          reset(l)
          resume(Effect.fail(new TransportError({ reason: "Write", address, detail: describeCause(error) })))
        })
        return Effect.sync(() => clearInterval(watch))
      })

    // Closed with a write still waiting for the kernel (a receiver not reading): reset, so that the
    // rest of a half-written frame is never sent (nothing on it counts as arrived: the sender
    // confirms only by a graceful close); else ended gracefully.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        const l = link
        link = undefined
        if (l === undefined) return
        if (waiting > 0) reset(l)
        else l.socket.end()
      })
    )

    return {
      connection: () => ({ id: link?.id ?? lastId, up: link !== undefined && !link.socket.destroyed }),
      pending: () => waiting > 0,
      onDown: (listener) => void downListeners.push(listener),
      quiet: Effect.callback<void>((resume) => {
        if (closing.size === 0) return resume(Effect.void)
        const wake = () => resume(Effect.void)
        closedWaiters.push(wake)
        return Effect.sync(() => {
          closedWaiters = closedWaiters.filter((w) => w !== wake)
        })
      }),
      // Not Effect.gen: a generator from a function made for each write keeps the data alive
      // until the next full GC (see Router.ts).
      write: (data) =>
        Effect.suspend(() =>
          link === undefined || link.socket.destroyed || link.socket.writableEnded
            ? Effect.flatMap(connect, (l) => writeTo(l, data))
            : writeTo(link, data)
        ),
      finish: (timeout) =>
        Effect.callback<void, TransportError>((resume) => {
          const l = link
          if (l === undefined || l.socket.destroyed) {
            return resume(Effect.fail(new TransportError({ reason: "Closed", address, detail: "the connection was already closed" })))
          }
          // Closed on purpose: no failure to tell; no more is written on it.
          l.told = true
          link = undefined
          const timer = setTimeout(() => {
            reset(l)
            resume(Effect.fail(
              new TransportError({ reason: "Timeout", address, detail: `the receiver did not close its side in ${Duration.format(timeout)}` })
            ))
          }, Duration.toMillis(timeout))
          l.socket.once("close", (hadError) => {
            clearTimeout(timer)
            resume(hadError ? Effect.fail(new TransportError({ reason: "Closed", address, detail: "reset while closing" })) : Effect.void)
          })
          l.socket.end()
          return Effect.sync(() => clearTimeout(timer))
        })
    } satisfies Client
  })

/** Certificate and handshake errors, as opposed to the network ones (refused, unreachable). */
const isTlsError = (error: Error): boolean => {
  const code = (error as { code?: unknown }).code
  return typeof code === "string" &&
    (code.startsWith("ERR_TLS") || code.startsWith("ERR_SSL") || /CERT|SELF_SIGNED|UNABLE_TO|DEPTH_ZERO/.test(code))
}
