/**
 * Live tails, as the original logtail served them, with its bugs fixed:
 *
 * - `create(hostname)` makes a session that waits to be opened (TailSessions: unused, it expires
 *   after 5 minutes).
 * - `open(id)` streams the hostname's lines as RFC 5424 as they arrive (TailFeed), for at most
 *   `maxDuration` (30 minutes), after replaying the last `lines` of the recent-logs buffer. While
 *   it is open, TailRoutes holds the route that makes every agent forward that app to logtail.
 *
 * With the Redis implementations of those three, any replica opens a session another one made,
 * and a tail sees the lines every replica receives.
 */
import { Context, Duration, Effect, Layer, Stream } from "effect"
import type { LogPacket } from "../../domain/LogPacket.ts"
import * as RecentLogsDomain from "../../domain/RecentLogs.ts"
import * as Rfc5424 from "../../domain/syslog/Rfc5424.ts"
import * as Log from "../Log.ts"
import { RecentLogs } from "../storage/RecentLogs.ts"
import { TailFeed } from "./TailFeed.ts"
import { TailRoutes } from "./TailRoutes.ts"
import { type Refusal, type TailSessionError, TailSessions } from "./TailSessions.ts"

export interface Options {
  readonly maxDuration?: Duration.Duration | undefined
}

export type Opened = { readonly lines: Stream.Stream<string> } | { readonly refused: Refusal }

export class LiveTails extends Context.Service<LiveTails, {
  readonly create: (hostname: string) => Effect.Effect<string, TailSessionError>
  /** The tail's lines (each ending in a newline), or why it cannot be opened. */
  readonly open: (id: string, replay: number) => Effect.Effect<Opened, TailSessionError>
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

export const layer = (options: Options = {}) =>
  Layer.effect(
    LiveTails,
    Effect.gen(function*() {
      const recent = yield* RecentLogs
      const sessions = yield* TailSessions
      const feed = yield* TailFeed
      const routes = yield* TailRoutes
      const maxDuration = options.maxDuration ?? Duration.minutes(30)

      const stream = (hostname: string, replay: number) =>
        Stream.unwrap(Effect.gen(function*() {
          // The queue first: the lines the route brings arrive once it is added.
          const queue = yield* feed.subscribe(hostname)
          yield* routes.hold(hostname)
          const past = replay > 0
            ? yield* recent.read(hostname, replay).pipe(
              Effect.catch((error) => Effect.as(Log.warn("cannot replay recent lines", { error: error.message }), undefined))
            )
            : undefined
          return Stream.concat(
            Stream.fromIterable((past ?? []).map((line) => `${replayLine(line, hostname)}\n`)),
            Stream.fromQueue(queue)
          ).pipe(Stream.interruptWhen(Effect.sleep(maxDuration)))
        }))

      return LiveTails.of({
        create: (hostname) => sessions.create(hostname).pipe(Effect.withSpan("LiveTails.create")),
        open: (id, replay) =>
          Effect.map(sessions.open(id), (opened) => ("refused" in opened ? opened : { lines: stream(opened.hostname, replay) })).pipe(
            Effect.withSpan("LiveTails.open")
          ),
        publish: feed.publish
      })
    })
  )
