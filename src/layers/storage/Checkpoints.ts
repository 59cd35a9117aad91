/**
 * The checkpointer of the container log input: where each followed file is, kept across restarts
 * in `<STATE_DIR>/container-logs.json`.
 *
 * A file's checkpoint says which generations of it are still needed (the live one and any it was
 * rotated out of or copied to, each known by device, inode and a hash of its first bytes), where
 * its drains resume in them — the place every drain is sure of, and the places of the drains that
 * were behind (by a hash of their URL: URLs may hold credentials) — so that a restart neither loses
 * nor repeats what a drain already had.
 *
 * Saved atomically: written to a temporary file, flushed to disk, renamed over the old one, so a
 * crash or power loss leaves either the old or the new checkpoint, never half of one. The
 * directory is flushed (the rename made durable) by the first save and the last: in between, a
 * power loss may bring back the checkpoint before the last few (an older place: lines read again,
 * none lost), and a save costs one fsync rather than two. Saved every few seconds by the input,
 * and once more when this layer is released — after the drains have flushed, so a clean stop
 * saves what they delivered.
 */
import { Context, Data, Effect, Layer } from "effect"
import { createHash } from "node:crypto"
import { constants } from "node:fs"
import * as Fs from "node:fs/promises"
import { join } from "node:path"
import * as Log from "../Log.ts"

export interface GenerationCheckpoint {
  readonly dev: number
  readonly ino: number
  /** Hash of the file's first `fingerprintBytes` bytes. */
  readonly fingerprint: string
  readonly fingerprintBytes: number
  /** Its size, once nothing writes it any more (rotated, a copy); absent for the live file. */
  readonly size?: number | undefined
}

/** Where to resume: a generation (an index into `generations`), a byte with no line pending, the first position wanted. */
export interface MarkCheckpoint {
  readonly generation: number
  readonly offset: number
  readonly from: number
}

/** A file of the path read to its end and let go (a rotated file, a copy): never a generation to read again. */
export interface DoneCheckpoint {
  readonly dev: number
  readonly ino: number
  readonly size: number
  readonly mtimeMs: number
}

export interface FileCheckpoint {
  /** The path followed (in the log directory). */
  readonly path: string
  /** Oldest first; the last is the live file (unless it was deleted). */
  readonly generations: ReadonlyArray<GenerationCheckpoint>
  /** Where every drain not listed in `behind` resumes. */
  readonly head: MarkCheckpoint
  /** Drains that were behind, by `endpointKey`. */
  readonly behind: Readonly<Record<string, MarkCheckpoint>>
  /**
   * The last few files of this path read to their end and let go, known by inode, size and
   * modification time (a reused inode is another file): after a restart they are not taken for
   * files rotated out while logtrain was away.
   */
  readonly done?: ReadonlyArray<DoneCheckpoint> | undefined
}

export class CheckpointError extends Data.TaggedError("CheckpointError")<{ readonly detail: string }> {
  override get message(): string {
    return this.detail
  }
}

const FILE = "container-logs.json"
const VERSION = 2

/** How a drain is named in a checkpoint: a hash of its URL, which may hold credentials. */
export const endpointKey = (endpoint: string): string => createHash("sha256").update(endpoint).digest("base64url").slice(0, 22)

const isInt = (n: unknown): n is number => Number.isSafeInteger(n)
const isMark = (u: unknown, generations: number): u is MarkCheckpoint => {
  const m = u as MarkCheckpoint
  return typeof m === "object" && m !== null && isInt(m.generation) && m.generation >= 0 && m.generation < generations &&
    isInt(m.offset) && m.offset >= 0 && typeof m.from === "number" && Number.isFinite(m.from)
}
const isDone = (u: unknown): u is DoneCheckpoint => {
  const d = u as DoneCheckpoint
  return typeof d === "object" && d !== null && isInt(d.dev) && isInt(d.ino) && isInt(d.size) && d.size >= 0 &&
    typeof d.mtimeMs === "number" && Number.isFinite(d.mtimeMs)
}
const isGeneration = (u: unknown): u is GenerationCheckpoint => {
  const g = u as GenerationCheckpoint
  return typeof g === "object" && g !== null && isInt(g.dev) && isInt(g.ino) && typeof g.fingerprint === "string" &&
    isInt(g.fingerprintBytes) && (g.size === undefined || (isInt(g.size) && g.size >= 0))
}

/** A checkpoint as read: this version's, or the first version's (one generation, one offset). */
const readEntry = (u: unknown): FileCheckpoint | undefined => {
  const entry = u as Record<string, unknown>
  if (typeof entry !== "object" || entry === null || typeof entry.path !== "string") return undefined
  if (Array.isArray(entry.generations)) {
    const generations = entry.generations
    if (generations.length === 0 || !generations.every(isGeneration) || !isMark(entry.head, generations.length)) return undefined
    const behind: Record<string, MarkCheckpoint> = {}
    if (typeof entry.behind === "object" && entry.behind !== null) {
      for (const [key, mark] of Object.entries(entry.behind)) if (isMark(mark, generations.length)) behind[key] = mark
    }
    const done = Array.isArray(entry.done) ? entry.done.filter(isDone) : []
    return { path: entry.path, generations, head: entry.head, behind, ...(done.length > 0 ? { done } : {}) }
  }
  const v1 = entry as { dev?: unknown; ino?: unknown; fingerprint?: unknown; fingerprintBytes?: unknown; offset?: unknown }
  const generation = { dev: v1.dev, ino: v1.ino, fingerprint: v1.fingerprint, fingerprintBytes: v1.fingerprintBytes }
  if (!isGeneration(generation) || !isInt(v1.offset) || v1.offset < 0) return undefined
  return { path: entry.path, generations: [generation], head: { generation: 0, offset: v1.offset, from: v1.offset }, behind: {} }
}

export class Checkpoints extends Context.Service<Checkpoints, {
  readonly stateDir: string
  /** False on the very first run: no checkpoint was ever saved in this state directory. */
  readonly existed: boolean
  /** When the checkpoints read at start were saved (epoch ms), if they say. */
  readonly savedAt: number | undefined
  /** The checkpoints read at start, by path. */
  readonly initial: ReadonlyMap<string, FileCheckpoint>
  /** Why the saved checkpoints could not be read, if they could not (files then start at their beginning). */
  readonly unreadable: string | undefined
  readonly save: (entries: Iterable<FileCheckpoint>) => Effect.Effect<void, CheckpointError>
  /** What the last save, when the layer is released, writes. */
  readonly saveAtStop: (entries: () => Iterable<FileCheckpoint>) => void
}>()("logtrain/storage/Checkpoints") {
  /**
   * The store in `dir` (created if missing). An unwritable directory is an error: logtrain could
   * not keep its promise not to lose or repeat lines across restarts. An unreadable checkpoint
   * counts as existing but empty: files then start at their beginning (repeating rather than
   * losing).
   */
  static readonly layer = (dir: string): Layer.Layer<Checkpoints, CheckpointError> =>
    Layer.effect(Checkpoints, Effect.gen(function*() {
      const { write, ...store } = yield* open(dir)
      let atStop: (() => Iterable<FileCheckpoint>) | undefined
      yield* Effect.addFinalizer(() =>
        atStop === undefined
          ? Effect.void
          : Effect.catch(write(atStop(), true), (error) => Log.error("cannot save checkpoints", { error: error.message }))
      )
      return Checkpoints.of({ ...store, saveAtStop: (entries) => void (atStop = entries) })
    }))
}

const open = (dir: string) =>
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
    let savedAt: number | undefined
    if (text !== undefined) {
      try {
        const json = JSON.parse(text) as { version?: unknown; files?: unknown; savedAt?: unknown }
        const at = typeof json.savedAt === "string" ? Date.parse(json.savedAt) : Number.NaN
        if (!Number.isNaN(at)) savedAt = at
        if ((json.version !== 1 && json.version !== VERSION) || !Array.isArray(json.files)) {
          throw new Error(`not a version ${VERSION} checkpoint`)
        }
        for (const u of json.files) {
          const entry = readEntry(u)
          if (entry !== undefined) initial.set(entry.path, entry)
        }
      } catch (error) {
        unreadable = (error as Error).message
      }
    }
    let sequence = 0
    /** What the last save wrote (savedAt aside): an unchanged checkpoint is not written again. */
    let last: string | undefined
    /** Whether a checkpoint file is on disk for good (its directory flushed since one was first made). */
    let durable = text !== undefined
    /** A rename not made durable yet (its directory not flushed since). */
    let renamed = false
    /** Saves `entries` (if changed); `flushDirectory` makes the rename durable too (else only the first save's is). */
    const write = (entries: Iterable<FileCheckpoint>, flushDirectory: boolean) =>
        Effect.tryPromise({
          try: async () => {
            const files = JSON.stringify([...entries])
            if (files !== last) {
              last = files
              const temporary = `${path}.${process.pid}.${sequence++}.tmp`
              const body = `{"version":${VERSION},"savedAt":"${new Date().toISOString()}","files":${files}}`
              const handle = await Fs.open(temporary, "w")
              try {
                await handle.writeFile(body)
                await handle.sync()
              } finally {
                await handle.close()
              }
              await Fs.rename(temporary, path)
              renamed = true
            }
            // The first checkpoint must outlive a power loss (without one, a restart would take
            // itself for a first run and start files at their end), and so must the last; one in
            // between may come back older.
            if (!renamed || (durable && !flushDirectory)) return
            const directory = await Fs.open(dir, "r")
            try {
              await directory.sync()
            } finally {
              await directory.close()
            }
            durable = true
            renamed = false
          },
          catch: fail(`cannot save ${FILE}`)
        }).pipe(Effect.withSpan("Checkpoints.save"))
    return {
      stateDir: dir,
      existed: text !== undefined,
      savedAt,
      initial,
      unreadable,
      save: (entries: Iterable<FileCheckpoint>) => write(entries, false),
      write
    }
  })
