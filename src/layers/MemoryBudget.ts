/**
 * One memory budget for the log data the process holds (`MEMORY_LIMIT`, in bytes), so that no load
 * — ten drains down at once, 16 KB lines, a flood of senders — grows the heap until the kernel
 * kills the pod. Data is counted where it waits, by the approximate bytes of its packets
 * (LogPacket.approximateBytes), and the budget is split between the holders once, at start:
 *
 * - the ingest queue (packets read, not routed yet): `ingest`, an eighth of the budget (1–16 MiB).
 *   Past it, inputs that can wait do (files stop reading, TCP and HTTP senders are slowed by flow
 *   control); UDP drops and counts (Ingest.ts);
 * - HTTP request bodies in flight: HTTP_MAX_BODY_MEMORY, set aside when an HTTP input is on
 *   (RequestBody.ts holds bodies within it);
 * - drain buffers: the rest (`drains`), shared by every open drain as a Pool (below). A packet that
 *   does not fit is dropped and counted (`logtrain_drain_dropped_total{reason="memory"}`) — but
 *   one whose source keeps it (a file's, with a receipt) is parked instead: it waits on disk, read
 *   again when the drain has room (Receipt.ts, Router.ts).
 *
 * Per-drain limits (DRAIN_BUFFER_SIZE, in packets) stay, as a second bound.
 *
 * The default, with a cgroup memory limit (`/sys/fs/cgroup/memory.max`, a container's): what is
 * left of it past the runtime's floor, halved, because a garbage-collected heap holds the garbage
 * of what it freed beside what is live (MemoryLimit.ts). Without one: DEFAULT_LIMIT. See the
 * README, Memory.
 */
import { Context, Effect, Layer } from "effect"
import * as Telemetry from "./Telemetry.ts"

export { cgroupLimit, DEFAULT_LIMIT, defaultLimit, MIN_LIMIT, RUNTIME_FLOOR } from "./MemoryLimit.ts"

/**
 * The drains' share of the budget, split so that drains that are down and full cannot starve one
 * that delivers. A drain whose last send failed may take `n` more bytes while what all drains hold
 * stays within half of `bytes`. One whose last send succeeded (`healthy`) may while it stays within
 * three quarters, or while the drain holds less than its guarantee, `bytes / (4 × drains)`.
 * So failing drains never push what is held past half, and a drain that delivers always finds at
 * least a quarter it can fill before it must drop — room for bursts of 16 KB lines. Together they
 * never hold more than `bytes`: past three quarters only guarantees grow, and they add up to a
 * quarter. Counted in plain numbers: the router asks per packet.
 */
export class Pool {
  /** Bytes all drains hold. */
  total = 0
  /** Open drains. */
  members = 0
  /** Waiting for bytes to come back (see `until`). */
  readonly waiters: Array<{ readonly ready: () => boolean; readonly wake: () => void }> = []

  readonly bytes: number
  constructor(bytes: number) {
    this.bytes = bytes
  }

  /** A drain's guaranteed bytes. */
  guarantee(): number {
    return this.bytes / (4 * Math.max(1, this.members))
  }

  join(): Account {
    this.members++
    return new Account(this)
  }

  /** Whether `account` may take `n` more bytes. */
  fits(account: Account, n: number): boolean {
    return account.healthy
      ? this.total + n <= 0.75 * this.bytes || account.bytes + n <= this.guarantee()
      : this.total + n <= 0.5 * this.bytes
  }

  /** Waits until `ready()` holds; rechecked whenever a drain gives bytes back or leaves. */
  until(ready: () => boolean): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      if (ready()) return resume(Effect.void)
      const waiter = { ready, wake: () => resume(Effect.void) }
      this.waiters.push(waiter)
      return Effect.sync(() => {
        const at = this.waiters.indexOf(waiter)
        if (at >= 0) this.waiters.splice(at, 1)
      })
    })
  }

  /** Wakes the waiters whose condition now holds. */
  recheck(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i]!
      if (waiter.ready()) {
        this.waiters.splice(i, 1)
        waiter.wake()
      }
    }
  }
}

/** One drain's bytes in a Pool. */
export class Account {
  bytes = 0
  /** Whether its drain's last send succeeded: a failing drain may hold less of the shared part. */
  healthy = true
  private left = false
  readonly pool: Pool
  constructor(pool: Pool) {
    this.pool = pool
  }

  fits(n: number): boolean {
    return this.pool.fits(this, n)
  }

  take(n: number): void {
    this.bytes += n
    this.pool.total += n
  }

  give(n: number): void {
    this.bytes -= n
    this.pool.total -= n
    if (this.pool.waiters.length > 0) this.pool.recheck()
  }

  /** The drain closed: gives back all it held and stops counting as a member. */
  leave(): void {
    if (this.left) return
    this.left = true
    this.pool.total -= this.bytes
    this.bytes = 0
    this.pool.members--
    this.pool.recheck()
  }
}

export interface Budget {
  /** MEMORY_LIMIT: all of it. */
  readonly limit: number
  /** Most bytes of packets the ingest queue holds. */
  readonly ingest: number
  /** Set aside for HTTP request bodies (HTTP_MAX_BODY_MEMORY), when an HTTP input is on. */
  readonly httpBodies: number
  /** The drain buffers' share. */
  readonly drains: Pool
}

/** Splits `limit` between the holders (see the module comment). */
export const make = (limit: number, options: { readonly httpBodies?: number | undefined } = {}): Budget => {
  const ingest = Math.min(16 * 1024 * 1024, Math.max(1024 * 1024, Math.floor(limit / 8)))
  const httpBodies = options.httpBodies ?? 0
  const drains = Math.max(1024 * 1024, limit - ingest - httpBodies)
  return { limit, ingest, httpBodies, drains: new Pool(drains) }
}

/** No bound: what code run without a program's budget (tests of one component) gets. */
export const unlimited = (): Budget => ({
  limit: Number.POSITIVE_INFINITY,
  ingest: Number.POSITIVE_INFINITY,
  httpBodies: 0,
  drains: new Pool(Number.POSITIVE_INFINITY)
})

/** The process's budget. Programs provide theirs (`layer`); the default bounds nothing. */
export const MemoryBudget = Context.Reference<Budget>("logtrain/MemoryBudget", { defaultValue: unlimited })

/** The budget, with its metrics, for a program. */
export const layer = (budget: Budget): Layer.Layer<never> =>
  Layer.effectDiscard(Effect.gen(function*() {
    yield* Telemetry.gauge("logtrain_memory_limit_bytes", "The memory budget for buffered log data (MEMORY_LIMIT).", {}, () =>
      budget.limit)
    yield* Telemetry.gauge(
      "logtrain_memory_share_bytes",
      "The budget's share of each holder of log data.",
      { holder: "drains" },
      () => budget.drains.bytes
    )
    yield* Telemetry.gauge("logtrain_memory_share_bytes", "The budget's share of each holder of log data.", { holder: "ingest" }, () =>
      budget.ingest)
    yield* Telemetry.gauge(
      "logtrain_memory_share_bytes",
      "The budget's share of each holder of log data.",
      { holder: "http_bodies" },
      () => budget.httpBodies
    )
    yield* Telemetry.gauge("logtrain_memory_held_bytes", "Bytes of log data held, by holder (approximate).", { holder: "drains" }, () =>
      budget.drains.total)
  }))

/** Provides `budget` as the MemoryBudget, with its metrics. */
export const provide = (budget: Budget) => Layer.merge(layer(budget), Layer.succeed(MemoryBudget, budget))
