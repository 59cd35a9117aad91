/**
 * The `file` recent-logs store: one file per app in a directory, trimmed to the last N lines as it
 * grows (a file may hold up to 2N; past that it is rewritten, to a temporary file renamed over it).
 *
 * File names never come raw from input. An app's name is percent-encoded (`/`, `.`, NUL and all
 * but `A-Za-z0-9-_!~*'()` encoded: reversible, and it cannot leave the directory) when that fits in
 * 200 bytes; a longer name (a 255-character hostname, a long UTF-8 label) is stored as
 * `+<sha256 of the name>.log`, its name kept in `+<sha256>.name` beside it — the index that maps it
 * back, checked before the file is used, so even a hash collision cannot mix two apps. `+` is always
 * encoded in the first form, so the two never meet.
 *
 * Each app is written on its own: an app whose file can never be written (EISDIR, EACCES, …) is
 * refused — its lines dropped and counted by the caller — and the other apps' lines are stored; an
 * append that fails half-way is cut back, so what is tried again is not stored twice. Errors that
 * say the store itself is unavailable (disk full, I/O error, out of descriptors) fail the write with
 * the lines not yet written, for the caller to try again.
 */
import { Effect, Layer } from "effect"
import { createHash } from "node:crypto"
import * as FsP from "node:fs/promises"
import { join } from "node:path"
import { type AppLine, RecentLogs, type Refusal, StorageError } from "./RecentLogs.ts"

/** The longest percent-encoded name used as it is (NAME_MAX is 255 bytes; `.log.tmp` must fit too). */
const MAX_ENCODED = 200

const encode = (app: string) => encodeURIComponent(app).replaceAll(".", "%2E")

/** The file an app's lines are kept in. */
export const fileNameOf = (app: string): string => {
  const encoded = encode(app)
  return encoded.length <= MAX_ENCODED ? `${encoded}.log` : `+${createHash("sha256").update(app).digest("hex")}.log`
}

/** The index file naming the app of a hashed file name; undefined for a percent-encoded one. */
const indexOf = (fileName: string): string | undefined => fileName.startsWith("+") ? `${fileName.slice(0, -".log".length)}.name` : undefined

/** Errors of the store as a whole: trying again later may succeed. Any other refuses the app. */
const UNAVAILABLE = new Set(["ENOSPC", "EDQUOT", "EIO", "EMFILE", "ENFILE", "EROFS", "EAGAIN", "EBUSY", "ENOMEM", "EINTR", "ETIMEDOUT"])

const codeOf = (error: unknown): string => {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  return typeof code === "string" && /^[A-Z0-9_]{1,32}$/.test(code) ? code : "error"
}

class Refused extends Error {
  readonly reason: string
  constructor(reason: string) {
    super(reason)
    this.reason = reason
  }
}

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

/** Rewrites a file with its last `keep` lines (to a temporary file, renamed over it); how many it kept. */
const trim = async (path: string, keep: number) => {
  const kept = ((await readLines(path)) ?? []).slice(-keep)
  const temporary = `${path}.tmp`
  await FsP.writeFile(temporary, kept.map((l) => `${l}\n`).join(""))
  await FsP.rename(temporary, path)
  return kept.length
}

/** Most apps whose line counts and checked index files are remembered (the rest are read again). */
const REMEMBERED = 10_000

/** A Map that forgets its oldest entries past `max`. */
const remember = <V>(map: Map<string, V>, key: string, value: V) => {
  map.delete(key)
  map.set(key, value)
  if (map.size > REMEMBERED) map.delete(map.keys().next().value!)
}

export const file = (dir: string, linesPerApp: number) =>
  Layer.effect(
    RecentLogs,
    Effect.gen(function*() {
      yield* Effect.tryPromise({
        try: () => FsP.mkdir(dir, { recursive: true }),
        catch: (error) => new StorageError({ adapter: "file", detail: `${dir}: ${(error as Error).message}` })
      })
      const counts = new Map<string, number>()
      const indexed = new Map<string, true>()

      /** Checks (or, with `create`, writes) the index of a hashed name: false when it names another app. */
      const ownsName = async (app: string, fileName: string, create: boolean): Promise<boolean> => {
        const index = indexOf(fileName)
        if (index === undefined || indexed.has(app)) return true
        const path = join(dir, index)
        let named: string | undefined
        try {
          named = await FsP.readFile(path, "utf8")
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
        }
        if (named === undefined) {
          if (!create) return false
          await FsP.writeFile(path, app, { flag: "wx" })
        } else if (named !== app) {
          return false
        }
        remember(indexed, app, true)
        return true
      }

      const append = async (app: string, lines: ReadonlyArray<string>) => {
        const fileName = fileNameOf(app)
        if (!(await ownsName(app, fileName, true))) throw new Refused("name_collision")
        const path = join(dir, fileName)
        let count = counts.get(app)
        if (count === undefined) count = (await readLines(path))?.length ?? 0
        const handle = await FsP.open(path, "a")
        try {
          const { size } = await handle.stat()
          try {
            await handle.writeFile(lines.map((l) => `${l}\n`).join(""))
          } catch (error) {
            // Cut back what a failed append left, so that trying again does not store it twice.
            await handle.truncate(size).catch(() => undefined)
            throw error
          }
        } finally {
          await handle.close()
        }
        count += lines.length
        remember(counts, app, count)
        if (count > 2 * linesPerApp) {
          // The lines are stored; trimming that fails is tried again at the next append.
          await trim(path, linesPerApp).then((kept) => remember(counts, app, kept), () => undefined)
        }
      }

      const write = async (lines: ReadonlyArray<AppLine>) => {
        const byApp = new Map<string, Array<string>>()
        for (const [app, line] of lines) {
          const list = byApp.get(app)
          if (list === undefined) byApp.set(app, [line])
          else list.push(line)
        }
        const refused: Array<Refusal> = []
        const apps = [...byApp]
        for (let i = 0; i < apps.length; i++) {
          const [app, list] = apps[i]!
          try {
            await append(app, list).catch(async (error) => {
              // The directory went away (removed by hand): made again, tried once more.
              if (codeOf(error) !== "ENOENT") throw error
              await FsP.mkdir(dir, { recursive: true })
              await append(app, list)
            })
          } catch (error) {
            const reason = error instanceof Refused ? error.reason : codeOf(error)
            if (!UNAVAILABLE.has(reason)) {
              refused.push({ app, lines: list.length, reason })
              continue
            }
            const unwritten = apps.slice(i).flatMap(([a, l]) => l.map((line) => [a, line] as const))
            throw new StorageError({ adapter: "file", detail: `cannot write: ${(error as Error).message}`, unwritten })
          }
        }
        return { refused }
      }

      return RecentLogs.of({
        adapter: "file",
        write: (lines) =>
          Effect.tryPromise({
            try: () => write(lines),
            catch: (error) =>
              error instanceof StorageError ? error : new StorageError({ adapter: "file", detail: `cannot write: ${(error as Error).message}` })
          }),
        read: (app, n) =>
          Effect.tryPromise({
            try: async () => {
              const fileName = fileNameOf(app)
              if (!(await ownsName(app, fileName, false))) return undefined
              const lines = await readLines(join(dir, fileName))
              if (lines === undefined || lines.length === 0) return undefined
              const take = Math.max(0, Math.min(n, linesPerApp))
              return take === 0 ? [] : lines.slice(-take)
            },
            catch: (error) => new StorageError({ adapter: "file", detail: `cannot read: ${(error as Error).message}` })
          }),
        destroy: (app) =>
          Effect.tryPromise({
            try: async () => {
              const fileName = fileNameOf(app)
              if (!(await ownsName(app, fileName, false))) return
              counts.delete(app)
              indexed.delete(app)
              await FsP.rm(join(dir, fileName), { force: true })
              const index = indexOf(fileName)
              if (index !== undefined) await FsP.rm(join(dir, index), { force: true })
            },
            catch: (error) => new StorageError({ adapter: "file", detail: `cannot delete: ${(error as Error).message}` })
          })
      })
    })
  )
