/**
 * Live tail sessions: `POST /tails` creates one (a random id naming a hostname), `GET /tails/:id`
 * opens it — once, within `expireUnused` (5 minutes) of its creation. The memory store here serves
 * one replica; the Redis one (redis/RedisTailSessions.ts) lets any replica open a session another
 * made.
 *
 * A session that cannot be opened says why: `malformed` (not an id this service makes), `unknown`,
 * `expired` (not opened in time) or `used` (opened already). Sessions are remembered for
 * `remember` (35 minutes) after their creation so that expired and used ones can be told from
 * unknown ones, unless room is needed: at most `maxSessions` (10,000) are kept, and when that many
 * are waiting to be opened, `POST /tails` is refused (counted).
 */
import { Clock, Context, Data, Duration, Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import * as Telemetry from "../Telemetry.ts"

export type Refusal = "malformed" | "unknown" | "expired" | "used"

export type Opened = { readonly hostname: string } | { readonly refused: Refusal }

/** The session store cannot be reached (Redis away), or is full. */
/**
 * A session could not be made or opened for a reason of the store, not of the request. Full: as
 * many sessions as allowed are open (try again later); Unavailable: the store did not answer.
 */
export class TailSessionError extends Data.TaggedError("TailSessionError")<{
  readonly reason: "Full" | "Unavailable"
  readonly detail: string
}> {
  override get message(): string {
    return `tail sessions: ${this.detail}`
  }
}

export class TailSessions extends Context.Service<TailSessions, {
  readonly create: (hostname: string) => Effect.Effect<string, TailSessionError>
  readonly open: (id: string) => Effect.Effect<Opened, TailSessionError>
}>()("logtrain/logtail/TailSessions") {}

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** Whether `id` has the form of the ids sessions are made with (a random UUID). */
export const isId = (id: string): boolean => ID.test(id)

export const newId = (): string => randomUUID()

export interface Options {
  readonly expireUnused?: Duration.Duration | undefined
  /** How long a session is kept to say `expired` or `used` rather than `unknown`. */
  readonly remember?: Duration.Duration | undefined
  readonly maxSessions?: number | undefined
}

export const EXPIRE_UNUSED = Duration.minutes(5)
export const REMEMBER = Duration.minutes(35)

export const memory = (options: Options = {}) =>
  Layer.effect(
    TailSessions,
    Effect.gen(function*() {
      const expireUnused = Duration.toMillis(options.expireUnused ?? EXPIRE_UNUSED)
      const remember = Duration.toMillis(options.remember ?? REMEMBER)
      const maxSessions = options.maxSessions ?? 10_000
      const sessions = new Map<string, { readonly hostname: string; readonly created: number; used: boolean }>()
      const stats = { refused: 0 }
      yield* Telemetry.gauge("logtail_tail_sessions", "Tail sessions remembered (opened or not).", {}, () => sessions.size)
      yield* Telemetry.counter("logtail_tail_sessions_refused_total", "POST /tails refused because too many sessions were pending.", {}, () =>
        stats.refused)
      const forget = (now: number) => {
        // Oldest first (Map order is creation order): stop at the first one still remembered.
        for (const [id, session] of sessions) {
          if (now - session.created <= remember) break
          sessions.delete(id)
        }
      }
      yield* Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => forget(now))).pipe(
        Effect.delay(Duration.seconds(10)),
        Effect.forever,
        Effect.forkScoped
      )
      return TailSessions.of({
        create: (hostname) =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            forget(now)
            if (sessions.size >= maxSessions) {
              // Those kept only to say why they cannot be opened go first.
              for (const [id, session] of sessions) {
                if (session.used || now - session.created > expireUnused) sessions.delete(id)
              }
            }
            if (sessions.size >= maxSessions) {
              stats.refused++
              return yield* new TailSessionError({ reason: "Full", detail: `${maxSessions} sessions already` })
            }
            const id = newId()
            sessions.set(id, { hostname, created: now, used: false })
            return id
          }),
        open: (id) =>
          Effect.gen(function*() {
            if (!isId(id)) return { refused: "malformed" as const }
            const session = sessions.get(id)
            if (session === undefined) return { refused: "unknown" as const }
            if (session.used) return { refused: "used" as const }
            if ((yield* Clock.currentTimeMillis) - session.created > expireUnused) return { refused: "expired" as const }
            session.used = true
            return { hostname: session.hostname }
          })
      })
    })
  )
