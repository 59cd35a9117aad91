/**
 * Where the container log input has read up to, per file, kept across restarts in
 * `<STATE_DIR>/container-logs.json`.
 *
 * Saved atomically: written to a temporary file, flushed to disk, renamed over the old one (and
 * the directory flushed), so a crash or power loss leaves either the old or the new checkpoint,
 * never half of one. A file is identified by device and inode plus a hash of its first bytes, as
 * inodes are reused once a file is deleted.
 */
import { Data, Effect } from "effect"
import { constants } from "node:fs"
import * as Fs from "node:fs/promises"
import { join } from "node:path"

export interface FileCheckpoint {
  /** The path followed (in the log directory). */
  readonly path: string
  readonly dev: number
  readonly ino: number
  /** Hash of the file's first `fingerprintBytes` bytes. */
  readonly fingerprint: string
  readonly fingerprintBytes: number
  /** Everything before this byte has been handed to the router. */
  readonly offset: number
}

export class CheckpointError extends Data.TaggedError("CheckpointError")<{ readonly detail: string }> {
  override get message(): string {
    return this.detail
  }
}

export interface Checkpoints {
  /** False on the very first run: no checkpoint was ever saved in this state directory. */
  readonly existed: boolean
  /** The checkpoints read at start, by path. */
  readonly initial: ReadonlyMap<string, FileCheckpoint>
  readonly save: (entries: Iterable<FileCheckpoint>) => Effect.Effect<void, CheckpointError>
}

const FILE = "container-logs.json"
const VERSION = 1

const isCheckpoint = (u: unknown): u is FileCheckpoint => {
  const c = u as FileCheckpoint
  return typeof c === "object" && c !== null && typeof c.path === "string" && Number.isSafeInteger(c.dev) &&
    Number.isSafeInteger(c.ino) && typeof c.fingerprint === "string" && Number.isSafeInteger(c.fingerprintBytes) &&
    Number.isSafeInteger(c.offset) && c.offset >= 0
}

/**
 * Opens the store in `dir` (created if missing). An unwritable directory is an error: logtrain
 * could not keep its promise not to lose or repeat lines across restarts. An unreadable checkpoint
 * counts as existing but empty, with a warning from the caller: files then start at their
 * beginning (repeating rather than losing).
 */
export const open = (dir: string) =>
  Effect.gen(function*() {
    const path = join(dir, FILE)
    const fail = (what: string) => (error: unknown) =>
      new CheckpointError({ detail: `STATE_DIR ${dir}: ${what}: ${(error as Error).message}` })
    yield* Effect.tryPromise({ try: () => Fs.mkdir(dir, { recursive: true }), catch: fail("cannot create it") })
    yield* Effect.tryPromise({ try: () => Fs.access(dir, constants.W_OK), catch: fail("cannot write to it") })
    const text = yield* Effect.tryPromise({
      try: () => Fs.readFile(path, "utf8").catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" ? undefined : Promise.reject(error))),
      catch: fail(`cannot read ${FILE}`)
    })
    const initial = new Map<string, FileCheckpoint>()
    let unreadable: string | undefined
    if (text !== undefined) {
      try {
        const json = JSON.parse(text) as { version?: unknown; files?: unknown }
        if (json.version !== VERSION || !Array.isArray(json.files)) throw new Error(`not a version ${VERSION} checkpoint`)
        for (const entry of json.files) if (isCheckpoint(entry)) initial.set(entry.path, entry)
      } catch (error) {
        unreadable = (error as Error).message
      }
    }
    let sequence = 0
    const store: Checkpoints = {
      existed: text !== undefined,
      initial,
      save: (entries) =>
        Effect.tryPromise({
          try: async () => {
            const temporary = `${path}.${process.pid}.${sequence++}.tmp`
            const body = JSON.stringify({ version: VERSION, savedAt: new Date().toISOString(), files: [...entries] })
            const handle = await Fs.open(temporary, "w")
            try {
              await handle.writeFile(body)
              await handle.sync()
            } finally {
              await handle.close()
            }
            await Fs.rename(temporary, path)
            const directory = await Fs.open(dir, "r")
            try {
              await directory.sync()
            } finally {
              await directory.close()
            }
          },
          catch: fail(`cannot save ${FILE}`)
        })
    }
    return { store, unreadable }
  })
