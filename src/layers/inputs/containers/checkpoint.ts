/**
 * A follower's checkpoint, both ways: what it saves (its generations from the oldest one still
 * needed, the head's place, and each drain's own place where it is behind), and a follower
 * started again from it — each generation found again by inode or first bytes, and the files
 * rotated out while logtrain was away — so that a restart neither loses nor repeats what a drain
 * already had.
 */
import * as Fs from "node:fs"
import type * as ContainerLog from "../../../domain/ContainerLog.ts"
import { POSITION_STEP } from "../../../domain/LineReader.ts"
import type * as Multiline from "../../../domain/Multiline.ts"
import type * as Checkpoints from "../../storage/Checkpoints.ts"
import { FileFollower, type FollowerCounts, type FollowerOptions } from "./FileFollower.ts"
import * as Files from "./files.ts"
import { earlier, Generation, type Mark, matchesFile } from "./generations.ts"
import type { Behind } from "./receipts.ts"

/** Where the head is: the oldest chunk not routed yet, or where it reads. */
const headMark = (follower: FileFollower): Mark => {
  const chunks = follower.chunks
  for (let i = 0; i < chunks.length; i++) if (chunks[i]!.unrouted > 0) return chunks[i]!.mark
  return { gen: follower.gen, offset: follower.reader.resumeOffset, from: Math.max(follower.reader.resumeOffset, follower.lastPos + POSITION_STEP / 2) }
}

/** A drain's own mark while it is behind (or its backlog not settled). */
const behindMark = (b: Behind): Mark | undefined => {
  for (const chunk of b.chunks) if (chunk.outstanding > 0) return chunk.mark
  return b.rejoinAt === undefined ? b.mark : undefined
}

/** How many of the files read to their end a checkpoint keeps (kubelet keeps 5 per container by default). */
const DONE_KEPT = 8

/** The later of two marks. */
const later = (a: Mark, b: Mark) => (earlier(a, b) ? b : a)

/**
 * What to save: the generations from the oldest one a mark is in, the head's mark (for every
 * drain not listed), and the marks of drains behind — those parked here, and, just after a
 * restart, those whose place the head has not passed yet.
 */
export const checkpointOf = (follower: FileFollower): Checkpoints.FileCheckpoint => {
  const head = headMark(follower)
  // Each drain's own place where it is behind the head: packets of it not settled, a backlog
  // it reads, or (just after a restart) a place the head has not reached yet. (Saved every second
  // for every file that moved: indexed loops, and no map unless some drain has a place of its own.)
  let marks: Map<string, Mark> | undefined
  const lower = (key: string, mark: Mark) => {
    marks ??= new Map()
    const had = marks.get(key)
    if (had === undefined || earlier(mark, had)) marks.set(key, mark)
  }
  const chunks = follower.chunks
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i]!
    for (let j = 0; j < chunk.owing; j++) lower(follower.keyOf(chunk.owingAt(j)), chunk.mark)
  }
  if (follower.behind.size > 0) {
    for (const b of follower.behind.values()) {
      const mark = behindMark(b)
      if (mark !== undefined) lower(follower.keyOf(b.endpoint), mark)
    }
  }
  let others = head
  if (follower.restart !== undefined) {
    // Just after a restart the head reads from the earliest place any drain needs; drains with
    // no place of their own had everything up to `others`. A drain with its own place has had
    // everything up to the later of it and the head: kept, if that is before `others` (a drain
    // still behind where the others were, the head not past it yet, is not one of the others).
    others = later(head, follower.restart.others)
    for (const [key, mark] of follower.restart.marks) {
      const place = later(head, mark)
      if (earlier(place, others)) lower(key, place)
    }
  }
  let first = others.gen
  if (marks !== undefined) for (const mark of marks.values()) if (mark.gen.seq < first.seq) first = mark.gen
  const all = follower.gens
  const gens = all[0] !== undefined && all[0].seq >= first.seq ? all : all.filter((gen) => gen.seq >= first.seq)
  // Generations every mark has passed, not released yet (their packets were settled after the head
  // left them: nothing releases them until the next rotation): read to their end as much as the
  // released ones — or, after a restart, one taken for a file rotated out while logtrain was away
  // is read again (a copytruncate's copy and the truncated file share a modification time).
  let done: Array<Checkpoints.DoneCheckpoint> | undefined
  for (let i = 0; i < all.length; i++) {
    const gen = all[i]!
    if (gen.seq < first.seq && gen.size !== undefined && gen.mtimeMs > 0) {
      done ??= [...follower.consumed]
      done.push({ dev: gen.identity.dev, ino: gen.identity.ino, size: gen.size, mtimeMs: gen.mtimeMs })
    }
  }
  done ??= follower.consumed
  const at = (mark: Mark): Checkpoints.MarkCheckpoint => ({
    generation: Math.max(0, gens.indexOf(mark.gen)),
    offset: mark.offset,
    from: Number.isFinite(mark.from) ? Math.max(mark.from, mark.offset) : mark.offset
  })
  const generations: Array<Checkpoints.GenerationCheckpoint> = []
  for (let i = 0; i < gens.length; i++) {
    const gen = gens[i]!
    generations.push({
      dev: gen.identity.dev,
      ino: gen.identity.ino,
      fingerprint: gen.print.fingerprint,
      fingerprintBytes: gen.print.fingerprintBytes,
      ...(gen === follower.live ? {} : { size: gen.size ?? 0 })
    })
  }
  const behind = marks === undefined ? {} : Object.fromEntries([...marks].map(([key, mark]) => [key, at(mark)]))
  return {
    path: follower.path,
    generations,
    head: at(others),
    behind,
    ...(done.length === 0 ? {} : { done: done.slice(-DONE_KEPT) })
  }
}

/**
 * A follower for `path`: from its checkpoint if it has one (finding each generation again, by
 * inode or first bytes, and the files rotated out since), else from its start, or — on the very
 * first run — from the end of what it holds, as the original did. Undefined if the file is gone.
 */
export const start = (init: {
  readonly path: string
  readonly file: ContainerLog.ContainerFile
  readonly hostname: string
  readonly tag: string
  /** Lines joined into events by this rule, if any. */
  readonly multiline?: Multiline.Rule | undefined
  readonly checkpoint: Checkpoints.FileCheckpoint | undefined
  /** Start at the end (the first run, no checkpoint). */
  readonly atEnd: boolean
  /** When the checkpoint was saved (epoch ms), if known. */
  readonly savedAt?: number | undefined
  readonly options: FollowerOptions
  readonly counts: FollowerCounts
  readonly onParked: (behind: Behind) => void
  readonly endpointKey: (endpoint: string) => string
}): FileFollower | undefined => {
  const fd = Files.openRead(init.path)
  if (fd === undefined) return undefined
  const stat = Fs.fstatSync(fd)
  const livePrint = Files.fingerprintOf(fd, stat.size)
  const make = (gens: Array<Generation>, start: Mark, restart?: FileFollower["restart"]) =>
    new FileFollower({ ...init, gens, start, restart })
  const saved = init.checkpoint
  if (saved === undefined) {
    const gen = new Generation(0, fd, stat, livePrint, stat.mtimeMs)
    const offset = init.atEnd ? Files.lastLineStart(fd, stat.size) : 0
    return make([gen], { gen, offset, from: offset })
  }
  // Files of this path read to their end before the stop (the same inode, size and time): never
  // generations again — not even when one looks like a file rotated out while logtrain was away.
  const savedDone = saved.done ?? []
  const done: Array<Files.Identity> = savedDone.length === 0 ? [] : Files.rotatedSince(init.path, 0, [])
    .filter((file) => savedDone.some((d) => Files.sameIdentity(d, file.stat) && d.size === file.stat.size && d.mtimeMs === file.stat.mtimeMs))
    .map((file) => file.stat)
  const allMarks = [saved.head, ...Object.values(saved.behind)]
  const gens: Array<Generation> = []
  let live: Generation | undefined
  saved.generations.forEach((g, i) => {
    const needed = Math.max(0, ...allMarks.filter((m) => m.generation === i).map((m) => m.offset))
    const isLast = i === saved.generations.length - 1
    const known = [...done, ...gens.map((x) => x.identity)]
    const isLive = () => {
      live = new Generation(i, fd, stat, livePrint, stat.mtimeMs)
      gens.push(live)
    }
    if (g.fingerprintBytes < Files.FINGERPRINT_BYTES && init.savedAt !== undefined) {
      // Too short when saved to be told apart by its first bytes. Renamed away, it kept its inode;
      // still at the path, it is the live file — unless it was truncated since: then it is the
      // oldest copy made since the save that begins as it did.
      let found: { readonly path: string; readonly stat: Fs.Stats } | undefined
      if (!Files.sameIdentity(stat, g)) {
        found = Files.rotatedSince(init.path, 0, [stat, ...known]).find((file) => Files.sameIdentity(file.stat, g) && file.stat.size >= needed)
      } else {
        found = Files.rotatedSince(init.path, init.savedAt, [stat, ...known])
          .find((file) => file.stat.size >= needed && matchesFile(file.path, g))
        if (found === undefined && isLast && g.size === undefined && Files.matches(fd, g) && stat.size >= needed) return isLive()
      }
      const foundFd = found === undefined ? undefined : Files.openRead(found.path)
      const gen = new Generation(i, foundFd, found?.stat ?? g, g, found?.stat.mtimeMs ?? 0)
      gen.size = found?.stat.size ?? needed
      if (foundFd === undefined) init.counts.unrecovered++
      gens.push(gen)
      return
    }
    if (isLast && g.size === undefined && Files.sameIdentity(stat, g) && Files.matches(fd, g) && stat.size >= needed) return isLive()
    const found = Files.findByFingerprint(init.path, g, needed, { prefer: g, exclude: [stat, ...known] })
    const gen = new Generation(i, found?.fd, found?.stat ?? g, g, found?.stat.mtimeMs ?? 0)
    gen.size = found?.stat.size ?? needed
    if (found === undefined) init.counts.unrecovered++
    gens.push(gen)
  })
  if (live === undefined) {
    // Rotated while logtrain was away: the files rotated out since, then the live one.
    const newest = gens.reduce((t, gen) => Math.max(t, gen.mtimeMs), 0)
    const since = Files.rotatedSince(init.path, newest, [stat, ...done, ...gens.map((gen) => gen.identity)])
      // (A copy that begins as the live file does is a copy of it, still being written: not one
      // of those rotated out. An empty live file tells nothing.)
      .filter((file) => livePrint.prefix.length === 0 || !Files.agree(Files.headOf(file.path, Files.FINGERPRINT_BYTES), livePrint.prefix))
    for (const file of since) {
      const rotatedFd = Files.openRead(file.path)
      if (rotatedFd === undefined) continue
      const gen = new Generation(gens.length, rotatedFd, file.stat, Files.fingerprintOf(rotatedFd, file.stat.size), file.stat.mtimeMs)
      gen.size = file.stat.size
      gens.push(gen)
    }
    gens.push(new Generation(gens.length, fd, stat, livePrint, stat.mtimeMs))
  }
  const mark = (m: Checkpoints.MarkCheckpoint): Mark => ({ gen: gens[m.generation]!, offset: m.offset, from: m.from })
  const head = mark(saved.head)
  const behind = new Map(Object.entries(saved.behind).map(([key, m]) => [key, mark(m)] as const))
  let start = head
  for (const m of behind.values()) if (earlier(m, start)) start = m
  // Read from the earliest place any drain needs; each drain takes only what comes after its own.
  const follower = make(gens, start, behind.size === 0 ? undefined : { marks: behind, others: head })
  follower.consumed.push(...savedDone)
  return follower
}
