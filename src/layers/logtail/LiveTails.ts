/**
 * Live tails, as the original logtail served them, with its bugs fixed:
 *
 * - `create(hostname)` makes a tail that waits to be opened; unused, it expires after
 *   `expireUnused` (5 minutes).
 * - `open(id)` streams the hostname's lines as RFC 5424 as they arrive, for at most `maxDuration`
 *   (30 minutes), after replaying the last `lines` of the recent-logs buffer. While any tail of a
 *   hostname is open, the writable datasource holds a route `hostname → endpoint` (this logtail's
 *   syslog input), so every agent forwards that app here; when the last one closes (client gone,
 *   time up), the route is removed.
 *
 * A tail whose client reads too slowly drops lines (counted) rather than holding up the others.
 */
import { Clock, Context, Duration, Effect, Layer, Option, Queue, Stream } from "effect"
import { randomUUID } from "node:crypto"
import type { LogPacket } from "../../domain/LogPacket.ts"
import * as RecentLogsDomain from "../../domain/RecentLogs.ts"
import * as Rfc5424 from "../../domain/syslog/Rfc5424.ts"
import { WritableDatasource } from "../datasources/WritableDatasource.ts"
import * as Log from "../Log.ts"
import * as Telemetry from "../Telemetry.ts"
import { RecentLogs } from "./RecentLogs.ts"

export interface Options {
  /** The drain URL agents send a tailed app's logs to (this logtail's syslog input); none: no routes are written. */
  readonly endpoint: string | undefined
  readonly expireUnused?: Duration.Duration | undefined
  readonly maxDuration?: Duration.Duration | undefined
  /** Lines a tail holds for a slow client before it drops. */
  readonly bufferLines?: number | undefined
}

interface Pending {
  readonly hostname: string
  readonly created: number
}

export class LiveTails extends Context.Service<LiveTails, {
  readonly create: (hostname: string) => Effect.Effect<string>
  /** The tail's lines (each ending in a newline), or none for an unknown or expired id. */
  readonly open: (id: string, replay: number) => Effect.Effect<Option.Option<Stream.Stream<string>>>
  /** Hands packets to the open tails of their hostnames. */
  readonly publish: (packets: ReadonlyArray<LogPacket>) => void
}>()("logtrain/logtail/LiveTails") {}

/** A line of the recent-logs buffer as an RFC 5424 line, for a replay. */
const replayLine = (line: string, hostname: string): string => {
  const parsed = RecentLogsDomain.parseLine(line)
  return Rfc5424.format(
    parsed === undefined
      ? { time: new Date(), hostname, tag: "logtail", message: line, severity: 6, facility: 1 }
      : { time: parsed.time, hostname: parsed.app, tag: parsed.tag, message: parsed.message, severity: 6, facility: 1 }
  )
}

export const layer = (options: Options) =>
  Layer.effect(
    LiveTails,
    Effect.gen(function*() {
      const recent = yield* RecentLogs
      const writable = yield* Effect.serviceOption(WritableDatasource)
      const expireUnused = Duration.toMillis(options.expireUnused ?? Duration.minutes(5))
      const maxDuration = options.maxDuration ?? Duration.minutes(30)
      const bufferLines = options.bufferLines ?? 10_000

      const pending = new Map<string, Pending>()
      const open = new Map<string, Set<Queue.Queue<string>>>()
      const stats = { opened: 0, dropped: 0 }
      yield* Telemetry.gauge("logtail_tails_open", "Live tails open.", {}, () => {
        let n = 0
        for (const set of open.values()) n += set.size
        return n
      })
      yield* Telemetry.counter("logtail_tails_total", "Live tails opened.", {}, () => stats.opened)
      yield* Telemetry.counter("logtail_tail_dropped_total", "Lines a slow tail client missed.", {}, () => stats.dropped)

      const routeOf = (hostname: string) => options.endpoint === undefined ? undefined : { hostname, endpoint: options.endpoint }
      const addRoute = (hostname: string) => {
        const route = routeOf(hostname)
        if (route === undefined || Option.isNone(writable)) return Effect.void
        return writable.value.add(route).pipe(
          Effect.tap(() => Log.info("tail route added", { hostname, endpoint: route.endpoint, datasource: writable.value.name })),
          Effect.catch((error) => Log.warn("cannot add the tail route: agents will not forward this app", { hostname, error: error.message }))
        )
      }
      const removeRoute = (hostname: string) => {
        const route = routeOf(hostname)
        if (route === undefined || Option.isNone(writable)) return Effect.void
        return writable.value.remove(route).pipe(
          Effect.tap(() => Log.info("tail route removed", { hostname, endpoint: route.endpoint })),
          Effect.catch((error) => Log.warn("cannot remove the tail route", { hostname, error: error.message }))
        )
      }

      // Forget tails nobody opened in time.
      yield* Effect.sync(() => {
        const now = Date.now()
        for (const [id, tail] of pending) if (now - tail.created > expireUnused) pending.delete(id)
      }).pipe(Effect.delay(Duration.seconds(10)), Effect.forever, Effect.forkScoped)

      const subscribe = (hostname: string) =>
        Effect.acquireRelease(
          Effect.gen(function*() {
            const queue = yield* Queue.dropping<string>(bufferLines)
            let set = open.get(hostname)
            const first = set === undefined
            if (set === undefined) open.set(hostname, set = new Set())
            set.add(queue)
            stats.opened++
            if (first) yield* addRoute(hostname)
            return queue
          }),
          (queue) =>
            Effect.gen(function*() {
              const set = open.get(hostname)
              set?.delete(queue)
              if (set !== undefined && set.size === 0) {
                open.delete(hostname)
                yield* removeRoute(hostname)
              }
            })
        )

      return LiveTails.of({
        create: (hostname) =>
          Effect.gen(function*() {
            const id = randomUUID()
            pending.set(id, { hostname, created: yield* Clock.currentTimeMillis })
            return id
          }),
        open: (id, replay) =>
          Effect.gen(function*() {
            const tail = pending.get(id)
            if (tail === undefined) return Option.none()
            pending.delete(id)
            if ((yield* Clock.currentTimeMillis) - tail.created > expireUnused) return Option.none()
            const stream = Stream.unwrap(Effect.gen(function*() {
              const queue = yield* subscribe(tail.hostname)
              const past = replay > 0
                ? yield* recent.read(tail.hostname, replay).pipe(
                  Effect.catch((error) => Effect.as(Log.warn("cannot replay recent lines", { error: error.message }), undefined))
                )
                : undefined
              return Stream.concat(
                Stream.fromIterable((past ?? []).map((line) => `${replayLine(line, tail.hostname)}\n`)),
                Stream.fromQueue(queue)
              ).pipe(Stream.interruptWhen(Effect.sleep(maxDuration)))
            }))
            return Option.some(stream)
          }),
        publish: (packets) => {
          if (open.size === 0) return
          for (const packet of packets) {
            const set = open.get(packet.hostname)
            if (set === undefined) continue
            const line = `${packet.rfc5424 ?? Rfc5424.format(packet)}\n`
            for (const queue of set) if (!Queue.offerUnsafe(queue, line)) stats.dropped++
          }
        }
      })
    })
  )
