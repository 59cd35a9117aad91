/**
 * logtail's recent-logs buffer: the last `NUMBER_OF_LINES` lines per app, in one of deis/logger's
 * storage adapters (`STORAGE_ADAPTER`):
 *
 * - `memory` — a ring per app in this process (the embedded default; bounded: N lines per app).
 * - `redis`  — a list per app (key = app, as deis/logger), `RPUSH` + `LTRIM` pipelined
 *   (see RedisRecentLogs.ts), so several replicas can share it.
 * - `file`   — one file per app in a directory, trimmed to the last N lines as it grows.
 */
import { Context, Data, Effect, Layer } from "effect"
import * as FsP from "node:fs/promises"
import { join } from "node:path"
import { Ring } from "../../domain/RecentLogs.ts"

export class StorageError extends Data.TaggedError("StorageError")<{ readonly adapter: string; readonly detail: string }> {
  override get message(): string {
    return `${this.adapter} storage: ${this.detail}`
  }
}

export class RecentLogs extends Context.Service<RecentLogs, {
  readonly adapter: string
  /** Appends lines (Deis format) to apps' buffers; the oldest beyond the limit are forgotten. */
  readonly write: (lines: ReadonlyArray<readonly [app: string, line: string]>) => Effect.Effect<void, StorageError>
  /** The last `n` lines of an app, oldest first; undefined for an app with none. */
  readonly read: (app: string, n: number) => Effect.Effect<ReadonlyArray<string> | undefined, StorageError>
  /** Forgets an app's lines. */
  readonly destroy: (app: string) => Effect.Effect<void, StorageError>
}>()("logtrain/logtail/RecentLogs") {}

/** Rings in memory: N lines per app. */
export const memory = (linesPerApp: number) =>
  Layer.sync(RecentLogs, () => {
    const apps = new Map<string, Ring<string>>()
    return RecentLogs.of({
      adapter: "memory",
      write: (lines) =>
        Effect.sync(() => {
          for (const [app, line] of lines) {
            let ring = apps.get(app)
            if (ring === undefined) apps.set(app, ring = new Ring(linesPerApp))
            ring.push(line)
          }
        }),
      read: (app, n) => Effect.sync(() => apps.get(app)?.last(n)),
      destroy: (app) => Effect.sync(() => void apps.delete(app))
    })
  })

/** A file name for an app that cannot leave the directory (`/`, `..`, NUL are encoded). */
export const fileNameOf = (app: string): string => `${encodeURIComponent(app).replaceAll(".", "%2E")}.log`

const fail = (detail: string) => (error: unknown) =>
  new StorageError({ adapter: "file", detail: `${detail}: ${(error as Error).message}` })

/** A file's lines; undefined when there is no file. */
const readLines = async (path: string): Promise<Array<string> | undefined> => {
  try {
    const text = await FsP.readFile(path, "utf8")
    return text === "" ? [] : text.slice(0, text.endsWith("\n") ? -1 : undefined).split("\n")
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined
    throw error
  }
}

/**
 * One file per app in `dir`. A file may hold up to twice N lines; past that it is rewritten (to a
 * temporary file, renamed over) with the last N.
 */
export const file = (dir: string, linesPerApp: number) => {
  const pathOf = (app: string) => join(dir, fileNameOf(app))
  return Layer.effect(
    RecentLogs,
    Effect.gen(function*() {
      yield* Effect.tryPromise({
        try: () => FsP.mkdir(dir, { recursive: true }),
        catch: (error) => new StorageError({ adapter: "file", detail: `${dir}: ${(error as Error).message}` })
      })
      const counts = new Map<string, number>()
      const append = async (app: string, lines: ReadonlyArray<string>) => {
        const path = pathOf(app)
        let count = counts.get(app)
        if (count === undefined) count = (await readLines(path))?.length ?? 0
        await FsP.appendFile(path, lines.map((l) => `${l}\n`).join(""))
        count += lines.length
        if (count > 2 * linesPerApp) {
          const kept = ((await readLines(path)) ?? []).slice(-linesPerApp)
          const temporary = `${path}.tmp`
          await FsP.writeFile(temporary, kept.map((l) => `${l}\n`).join(""))
          await FsP.rename(temporary, path)
          count = kept.length
        }
        counts.set(app, count)
      }
      return RecentLogs.of({
        adapter: "file",
        write: (lines) =>
          Effect.tryPromise({
            try: async () => {
              const byApp = new Map<string, Array<string>>()
              for (const [app, line] of lines) {
                const list = byApp.get(app)
                if (list === undefined) byApp.set(app, [line])
                else list.push(line)
              }
              for (const [app, list] of byApp) await append(app, list)
            },
            catch: fail("cannot write")
          }),
        read: (app, n) =>
          Effect.tryPromise({
            try: async () => {
              const lines = await readLines(pathOf(app))
              if (lines === undefined || lines.length === 0) return undefined
              const take = Math.max(0, Math.min(n, linesPerApp))
              return take === 0 ? [] : lines.slice(-take)
            },
            catch: fail(`cannot read ${app}`)
          }),
        destroy: (app) =>
          Effect.tryPromise({
            try: async () => {
              counts.delete(app)
              await FsP.rm(pathOf(app), { force: true })
            },
            catch: fail(`cannot delete ${app}`)
          })
      })
    })
  )
}
