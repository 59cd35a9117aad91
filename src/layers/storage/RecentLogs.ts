/**
 * logtail's recent-logs buffer: the last `NUMBER_OF_LINES` lines per app, in one of deis/logger's
 * storage adapters (`STORAGE_ADAPTER`):
 *
 * - `memory` — a ring per app in this process (the embedded default), at most
 *   `STORAGE_MEMORY_MAX_APPS` apps: past that the least recently written app is forgotten.
 * - `redis`  — a list per app (key = app, as deis/logger), so several replicas share it
 *   (RedisRecentLogs.ts).
 * - `file`   — one file per app in a directory (FileRecentLogs.ts).
 *
 * A write says which apps' lines the store refused for good (a key it can never write): those are
 * dropped and counted by the caller, the others are stored. A store that cannot be reached at all
 * fails with a `StorageError` naming the lines it did not write, which the caller tries again.
 */
import { Context, Data, Effect, Layer } from "effect"
import { Ring } from "../../domain/RecentLogs.ts"
import * as Telemetry from "../Telemetry.ts"

/** The store is unavailable (Redis away, disk full): nothing of `unwritten` (all, when absent) was stored. */
export class StorageError extends Data.TaggedError("StorageError")<{
  readonly adapter: string
  readonly detail: string
  readonly unwritten?: ReadonlyArray<AppLine> | undefined
}> {
  override get message(): string {
    return `${this.adapter} storage: ${this.detail}`
  }
}

export type AppLine = readonly [app: string, line: string]

/** An app's lines a store refused for good; `reason` is short and from a small set (an errno code, a Redis error type). */
export interface Refusal {
  readonly app: string
  readonly lines: number
  readonly reason: string
}

export interface WriteOutcome {
  readonly refused: ReadonlyArray<Refusal>
}

export const written: WriteOutcome = { refused: [] }

export class RecentLogs extends Context.Service<RecentLogs, {
  readonly adapter: string
  /** How the writer should gather lines before a write (Redis pipelines); none: write what is there. */
  readonly batching?: { readonly lines: number; readonly timeoutMillis: number } | undefined
  /** Appends lines (Deis format) to apps' buffers; the oldest beyond the limit are forgotten. */
  readonly write: (lines: ReadonlyArray<AppLine>) => Effect.Effect<WriteOutcome, StorageError>
  /** The last `n` lines of an app, oldest first; undefined for an app with none. */
  readonly read: (app: string, n: number) => Effect.Effect<ReadonlyArray<string> | undefined, StorageError>
  /** Forgets an app's lines. */
  readonly destroy: (app: string) => Effect.Effect<void, StorageError>
}>()("logtrain/logtail/RecentLogs") {}

export interface MemoryOptions {
  /** Most apps kept (10,000); writing a new app past that forgets the least recently written one. */
  readonly maxApps?: number | undefined
}

export const DEFAULT_MAX_APPS = 10_000

/**
 * Rings in memory: N lines per app, at most `maxApps` apps. The Map keeps apps in the order they
 * were last written (an app written is moved to the end), so the first is the one to forget.
 */
export const memory = (linesPerApp: number, options: MemoryOptions = {}) =>
  Layer.effect(
    RecentLogs,
    Effect.gen(function*() {
      const maxApps = Math.max(1, options.maxApps ?? DEFAULT_MAX_APPS)
      const apps = new Map<string, Ring<string>>()
      const stats = { evicted: 0 }
      // The app written last is already at the end: most batches are runs of one app's lines.
      let last: string | undefined
      yield* Telemetry.gauge("logtail_storage_apps", "Apps whose lines the store keeps.", { adapter: "memory" }, () => apps.size)
      yield* Telemetry.counter(
        "logtail_storage_apps_evicted_total",
        "Apps forgotten to stay within STORAGE_MEMORY_MAX_APPS (the least recently written first).",
        { adapter: "memory" },
        () => stats.evicted
      )
      return RecentLogs.of({
        adapter: "memory",
        write: (lines) =>
          Effect.sync(() => {
            for (const [app, line] of lines) {
              let ring = apps.get(app)
              if (ring === undefined) {
                apps.set(app, ring = new Ring(linesPerApp))
                if (apps.size > maxApps) {
                  apps.delete(apps.keys().next().value!)
                  stats.evicted++
                }
              } else if (app !== last) {
                apps.delete(app)
                apps.set(app, ring)
              }
              last = app
              ring.push(line)
            }
            return written
          }),
        read: (app, n) => Effect.sync(() => apps.get(app)?.last(n)),
        destroy: (app) =>
          Effect.sync(() => {
            apps.delete(app)
            if (last === app) last = undefined
          })
      })
    })
  )
