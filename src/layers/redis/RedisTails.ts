/**
 * Live tails across replicas, in Redis: the fan-out (TailFeed) and the tail routes (TailRoutes).
 *
 * Fan-out. Every replica knows which hosts have a tail open anywhere (the `tailed` set, read every
 * second, plus an announcement on the channel when a tail opens) and publishes, per chunk of
 * packets, the lines of those hosts on one pub/sub channel; every replica subscribes to it and hands
 * the lines to its own tails (its own lines it hands over directly). Pub/sub is at most once: after
 * Redis drops a connection, node-redis reconnects and subscribes again, and what was published
 * meanwhile is lost. Each replica numbers the lines it publishes per host, so a tail notices a gap
 * in any replica's numbers and counts what it missed (`logtail_tail_missed_total`); lines a replica
 * could not publish at all (Redis unreachable, too many publishes waiting) count too
 * (`logtail_tail_unpublished_total`).
 *
 * Routes. A replica with a tail of a host open holds a lease on it (redis/leases.ts), renewed every
 * third of `lease`. The host's route is added when it has a lease and is not yet routed, and
 * removed when its last lease is given up — under a lock per host, so replicas opening and closing
 * tails of one host at once never leave it wrong. Every second each replica also looks for routes
 * whose leases have all ended (a replica SIGKILLed) and removes them, so none outlives its owner by
 * more than `lease` and a second; at start that removes what a crash left, and only that.
 */
import * as NodeRedis from "@effect/platform-node/NodeRedis"
import { Context, Duration, Effect, Layer, Option, Schedule, Semaphore, Stream } from "effect"
import * as Redis from "effect/persistence/Redis"
import { randomUUID } from "node:crypto"
import type { LogPacket } from "../../domain/LogPacket.ts"
import { WritableDatasource } from "../datasources/WritableDatasource.ts"
import * as Log from "../Log.ts"
import { datasourcesLoaded, Readiness } from "../Readiness.ts"
import { RouteTable } from "../routing/RouteTable.ts"
import * as Telemetry from "../Telemetry.ts"
import { lineOf, makeLocalTails, TailFeed } from "../tails/TailFeed.ts"
import { routeWriter, TailRoutes } from "../tails/TailRoutes.ts"
import type { Keys } from "./keys.ts"
import * as Leases from "./leases.ts"

export interface Options {
  readonly keys: Keys
  /** This replica's id in leases and messages: a new one each start. */
  readonly replica: string
  /** The drain URL agents send a tailed app's logs to; none: no routes are written. */
  readonly endpoint: string | undefined
  /** How long a lease lasts unless renewed (15 s). */
  readonly lease?: Duration.Duration | undefined
  /** Lines a tail holds for a slow client before it drops (10,000). */
  readonly bufferLines?: number | undefined
}

/** Publishes waiting for Redis beyond which lines are not published (counted) rather than queued. */
const MAX_IN_FLIGHT = 256
const WARN_EVERY_MS = 10_000

interface Published {
  readonly r?: unknown
  readonly t?: unknown
  readonly o?: unknown
}

const message = (error: Redis.RedisError) => error.cause instanceof Error ? error.cause.message : String(error.cause)

const make = (options: Options) =>
  Effect.gen(function*() {
    const redis = yield* Redis.Redis
    const { client } = yield* NodeRedis.NodeRedis
    const table = yield* RouteTable
    const readiness = yield* Readiness
    const writable = yield* Effect.serviceOption(WritableDatasource)
    const { keys, replica, endpoint } = options
    const leaseMs = Duration.toMillis(options.lease ?? Duration.seconds(15))
    const local = yield* makeLocalTails(options.bufferLines ?? 10_000)
    const writer = Option.isSome(writable) && endpoint !== undefined ? routeWriter(writable.value, endpoint) : undefined

    /** This replica's tails, counted per host. */
    const held = new Map<string, number>()
    /** Hosts with a tail open anywhere, as last read (plus announcements since). */
    let tailedAnywhere = new Set<string>()
    const announced = new Map<string, number>()
    /** The number of the last line published per host. */
    const published = new Map<string, number>()
    /** Per host tailed here, per replica: the number of the next line expected from it. */
    const expected = new Map<string, Map<string, number>>()
    const stats = { missed: 0, unpublished: 0, removed: 0 }
    let inFlight = 0

    yield* Telemetry.counter(
      "logtail_tail_missed_total",
      "Lines tails missed because Redis dropped a connection (gaps in a replica's numbering, per tail).",
      {},
      () => stats.missed
    )
    yield* Telemetry.counter(
      "logtail_tail_unpublished_total",
      "Lines of tailed hosts this replica could not publish to Redis (unreachable, or too many publishes waiting).",
      {},
      () => stats.unpublished
    )
    yield* Telemetry.counter("logtail_tail_routes_expired_total", "Tail routes removed because every lease on them had ended.", {}, () =>
      stats.removed)
    yield* Telemetry.gauge("logtail_tails_tailed_hosts", "Hosts with a tail open on any replica, as this one knows.", {}, () =>
      tailedAnywhere.size)

    const warned = new Map<string, number>()
    const warnSometimes = (kind: string, text: string, fields: Record<string, unknown>) =>
      Effect.suspend(() => {
        const now = Date.now()
        if (now - (warned.get(kind) ?? 0) < WARN_EVERY_MS) return Effect.void
        warned.set(kind, now)
        return Log.warn(text, fields)
      })

    const tailed = (hostname: string) => held.has(hostname) || tailedAnywhere.has(hostname)

    // ---- fan-out

    const publish = (packets: ReadonlyArray<LogPacket>) => {
      if (held.size === 0 && tailedAnywhere.size === 0) return
      let groups: Map<string, Array<string>> | undefined
      for (const packet of packets) {
        if (!tailed(packet.hostname)) continue
        groups ??= new Map()
        const list = groups.get(packet.hostname)
        if (list === undefined) groups.set(packet.hostname, [lineOf(packet)])
        else list.push(lineOf(packet))
      }
      if (groups === undefined) return
      const entries: Array<readonly [string, number, ReadonlyArray<string>]> = []
      let count = 0
      for (const [hostname, lines] of groups) {
        // This replica's own tails get its lines at once, whatever Redis does.
        if (local.has(hostname)) local.deliver(hostname, lines)
        const last = published.get(hostname) ?? 0
        published.set(hostname, last + lines.length)
        entries.push([hostname, last + 1, lines])
        count += lines.length
      }
      // Numbered even when not sent: the receivers see the gap and count it.
      if (inFlight >= MAX_IN_FLIGHT || !client.isReady) {
        stats.unpublished += count
        return
      }
      inFlight++
      client.sendCommand(["PUBLISH", keys.channel, JSON.stringify({ r: replica, t: entries })]).then(
        () => void inFlight--,
        () => {
          inFlight--
          stats.unpublished += count
        }
      )
    }

    const receive = (text: string) => {
      let data: Published
      try {
        data = JSON.parse(text) as Published
      } catch {
        return
      }
      if (typeof data.o === "string") {
        tailedAnywhere.add(data.o)
        announced.set(data.o, Date.now())
        return
      }
      const from = data.r
      if (typeof from !== "string" || from === replica || !Array.isArray(data.t)) return
      for (const entry of data.t as ReadonlyArray<unknown>) {
        if (!Array.isArray(entry)) continue
        const [hostname, first, lines] = entry as [unknown, unknown, unknown]
        if (typeof hostname !== "string" || typeof first !== "number" || !Array.isArray(lines) || !local.has(hostname)) continue
        let next = expected.get(hostname)
        if (next === undefined) expected.set(hostname, next = new Map())
        const wanted = next.get(from)
        if (wanted !== undefined && first > wanted) stats.missed += (first - wanted) * local.count(hostname)
        // A number lower than expected: that replica numbers this host afresh (it stopped publishing it for a while).
        next.set(from, first + lines.length)
        local.deliver(hostname, lines as ReadonlyArray<string>)
      }
    }

    const subscribed = yield* readiness.register("redis:tails")
    yield* Effect.scoped(Effect.gen(function*() {
      const queue = yield* redis.subscribe(keys.channel)
      yield* subscribed.ready
      yield* Stream.fromQueue(queue).pipe(
        Stream.runForEachArray((messages) =>
          Effect.sync(() => {
            for (const m of messages) receive(m.message)
          })
        )
      )
    })).pipe(
      Effect.tapError((error) => warnSometimes("subscribe", "tails: the Redis subscription failed; subscribing again", { error: message(error) })),
      Effect.retry(Schedule.spaced("500 millis")),
      Effect.forkScoped
    )

    /** What hosts are tailed anywhere, every second; announcements of the last 3 s are kept. */
    const runTailed = redis.eval(Leases.tailed)
    yield* Effect.gen(function*() {
      const hosts = yield* runTailed(keys.tailed)
      const now = Date.now()
      const next = new Set(hosts)
      for (const [hostname, at] of announced) {
        if (now - at < 3000) next.add(hostname)
        else announced.delete(hostname)
      }
      tailedAnywhere = next
      for (const hostname of published.keys()) if (!next.has(hostname) && !held.has(hostname)) published.delete(hostname)
    }).pipe(
      Effect.catch((error) => warnSometimes("refresh", "tails: cannot read which hosts are tailed from Redis", { error: message(error) })),
      Effect.delay(Duration.seconds(1)),
      Effect.forever,
      Effect.forkScoped
    )

    // ---- leases and routes

    const runTake = redis.eval(Leases.take)
    const runGive = redis.eval(Leases.give)
    const runState = redis.eval(Leases.state)
    const runVacant = redis.eval(Leases.vacant)
    const runUnlock = redis.eval(Leases.unlock)
    const takeLeases = (hosts: ReadonlyArray<string>, announce: boolean) =>
      runTake([keys.tailed, keys.routed, ...hosts.map(keys.owners)], replica, leaseMs, keys.channel, announce, hosts)

    /** Runs `effect` holding the host's lock (waiting up to 10 s for it). */
    const withLock = <A, E>(hostname: string, effect: Effect.Effect<A, E>) =>
      Effect.gen(function*() {
        const token = randomUUID()
        const deadline = Date.now() + 10_000
        while ((yield* redis.send<string | null>("SET", keys.lock(hostname), token, "NX", "PX", "30000")) !== "OK") {
          if (Date.now() > deadline) return yield* new Redis.RedisError({ cause: new Error(`the route lock of ${hostname} is held by another replica`) })
          yield* Effect.sleep("25 millis")
        }
        return yield* effect.pipe(Effect.ensuring(Effect.ignore(runUnlock(keys.lock(hostname), token))))
      })

    const inTable = (hostname: string) => table.routes().some((route) => route.hostname === hostname && route.endpoint === endpoint)
    /** When adding a host's route last failed: tried again a minute later at the soonest. */
    const addFailed = new Map<string, number>()

    /** Makes the host's route what its leases say: there while one lives, gone after. True when it removed it. */
    const reconcile = (hostname: string): Effect.Effect<boolean, Redis.RedisError> =>
      writer === undefined ? Effect.succeed(false) : withLock(
        hostname,
        Effect.gen(function*() {
          const [live = 0, routed = 0] = yield* runState(keys.owners(hostname), keys.routed, hostname)
          if (live > 0 && routed === 0) {
            if (yield* writer.add(hostname)) {
              addFailed.delete(hostname)
              yield* redis.send("SADD", keys.routed, hostname)
            } else {
              addFailed.set(hostname, Date.now())
            }
          } else if (live === 0 && (routed === 1 || inTable(hostname))) {
            if (!(yield* writer.remove(hostname))) return false
            yield* redis.send("SREM", keys.routed, hostname)
            return true
          }
          return false
        })
      )
    // One change of routes at a time on this replica: a tail closing and one opening never cross.
    const serial = yield* Semaphore.make(1)
    const reconcileNow = (hostname: string) =>
      serial.withPermits(1)(reconcile(hostname)).pipe(
        Effect.catch((error) =>
          Effect.as(warnSometimes(`route:${hostname}`, "tails: cannot update the tail route", { hostname, error: message(error) }), false)
        )
      )

    // Renewal: every third of a lease; routes missing for held hosts (Redis lost its state) are added again.
    yield* Effect.gen(function*() {
      if (held.size === 0) return
      const unrouted = yield* takeLeases([...held.keys()], false)
      const now = Date.now()
      for (const hostname of unrouted) {
        if (held.has(hostname) && now - (addFailed.get(hostname) ?? 0) > 60_000) yield* reconcileNow(hostname)
      }
    }).pipe(
      Effect.catch((error) => warnSometimes("renew", "tails: cannot renew leases in Redis", { error: message(error) })),
      Effect.delay(Duration.millis(leaseMs / 3)),
      Effect.forever,
      Effect.forkScoped
    )

    // Sweep: routes (written by tails, or found in the datasource) whose leases have all ended.
    if (writer !== undefined) {
      let loaded = false
      yield* datasourcesLoaded.pipe(Effect.andThen(Effect.sync(() => (loaded = true))), Effect.forkScoped)
      yield* Effect.gen(function*() {
        const routed = yield* redis.send<Array<string>>("SMEMBERS", keys.routed)
        const candidates = new Set(routed)
        if (loaded) for (const route of table.routes()) if (route.endpoint === endpoint) candidates.add(route.hostname)
        for (const hostname of held.keys()) candidates.delete(hostname)
        if (candidates.size === 0) return
        const hosts = [...candidates]
        const vacant = yield* runVacant(hosts.map(keys.owners))
        let removed = 0
        for (const i of vacant) if (yield* reconcileNow(hosts[i - 1]!)) removed++
        stats.removed += removed
        if (removed > 0) yield* Log.info("removed tail routes whose owners are gone", { count: removed, endpoint })
      }).pipe(
        Effect.catch((error) => warnSometimes("sweep", "tails: cannot look for expired tail routes in Redis", { error: message(error) })),
        Effect.delay(Duration.millis(Math.min(1000, leaseMs / 4))),
        Effect.forever,
        Effect.forkScoped
      )
    }

    const hold = (hostname: string) =>
      Effect.acquireRelease(
        Effect.gen(function*() {
          const count = held.get(hostname) ?? 0
          held.set(hostname, count + 1)
          if (count > 0) return
          yield* takeLeases([hostname], true).pipe(
            Effect.catch((error) => warnSometimes("take", "tails: cannot take a lease in Redis; trying again", { hostname, error: message(error) }))
          )
          yield* reconcileNow(hostname)
        }),
        () =>
          Effect.gen(function*() {
            const count = (held.get(hostname) ?? 1) - 1
            if (count > 0) return void held.set(hostname, count)
            held.delete(hostname)
            const left = yield* runGive(keys.owners(hostname), keys.tailed, replica, hostname).pipe(
              Effect.catch((error) => Effect.as(warnSometimes("give", "tails: cannot give a lease up in Redis (it ends by itself)", { hostname, error: message(error) }), -1))
            )
            if (left === 0) yield* reconcileNow(hostname)
          })
      )

    // The finalizer first: it runs after the queue's, when the host may have no tail left here.
    const subscribe = (hostname: string) =>
      Effect.andThen(
        Effect.addFinalizer(() =>
          Effect.sync(() => {
            if (!local.has(hostname)) expected.delete(hostname)
          })
        ),
        local.subscribe(hostname)
      )

    yield* Log.info("live tails across replicas through Redis", { replica, lease: `${leaseMs}ms`, channel: keys.channel })
    return Context.make(TailFeed, TailFeed.of({ publish, subscribe })).pipe(
      Context.add(TailRoutes, TailRoutes.of({ hold, tailed }))
    )
  })

export const layer = (options: Options) => Layer.effectContext(make(options))
