/**
 * Drains behind: a drain that was full when offered one of a file's packets reads the file again
 * from there by itself, as fast as it takes packets, until it has caught up with the head (then
 * the head's packets go to it again). It may hold generations the head has left; more than
 * `maxBacklogBytes` behind, its oldest lines are skipped, counted for it (`backlog_limit`).
 */
import * as Fs from "node:fs"
import { POSITION_STEP } from "../../../domain/LineReader.ts"
import type { FileFollower } from "./FileFollower.ts"
import * as Files from "./files.ts"
import { CHUNK, countLines, lineStartAfter, readAt } from "./generations.ts"
import { type Behind, Chunk, forget } from "./receipts.ts"
import { truncated } from "./rotation.ts"

/** What `feedBacklog` came to. */
export type BacklogStep = "more" | "full" | "caughtUp" | "gone"

/**
 * Feeds `b` its backlog: reads a chunk of it again from the file and offers it to its drain,
 * until the drain is full, caught up with the head, or gone (its route removed).
 */
export const feedBacklog = (follower: FileFollower, b: Behind, now: number): BacklogStep => {
  follower.changed()
  if (follower.behind.get(b.endpoint) !== b) return "gone"
  if (b.rejoinAt !== undefined) return "caughtUp"
  limitBacklog(follower, b)
  const gen = b.mark.gen
  const atHead = gen === follower.gen
  if (b.reader === undefined) b.reader = follower.readerAt(b.mark.offset, b.out)
  const reader = b.reader
  const resume = reader.resumeOffset
  // At the head's generation, up to the last line the head handed over; before it, to the end.
  const limit = atHead ? Math.max(reader.offset, Math.floor(follower.lastPos)) : gen.size!
  if (atHead && gen.fd === undefined) {
    // The head's generation was truncated and its copy not found: what this drain had yet to
    // read of it is gone (counted when the head moves on). It rejoins the head.
    b.rejoinAt = { gen: follower.gen, from: follower.lastPos }
    b.reader = undefined
    follower.release()
    follower.onResume()
    return "caughtUp"
  }
  const n = gen.fd === undefined ? 0 : Math.min(CHUNK, limit - reader.offset)
  if (n > 0) {
    const bytes = readAt(gen.fd!, n, reader.offset)
    if (gen === follower.live && (bytes.length < n || !Files.matches(gen.fd!, gen.print))) {
      // Truncated since the head read it (a copytruncate while the head waits for this drain):
      // the generation goes on in the copy, from which this drain reads it next time.
      truncated(follower, Fs.fstatSync(gen.fd!))
      b.reader = undefined
      return "more"
    }
    reader.feed(bytes, now)
  }
  const ended = !atHead && (gen.fd === undefined || reader.offset >= gen.size!)
  if (ended) reader.endOfFile()
  // Caught up: events the head sent on a timeout are still being gathered here; sent now.
  else if (atHead && Number.isFinite(follower.lastPos) && reader.offset >= Math.floor(follower.lastPos)) reader.flushEventsSentBy(follower.reader, follower.lastPos)
  let chunk: Chunk | undefined
  let last = Number.NaN
  for (const line of b.out) {
    if (line.position < b.mark.from) continue
    if (atHead && line.position > follower.lastPos) break
    if (chunk === undefined) {
      chunk = new Chunk(follower, b, gen, resume, line.position, line.position, 0)
      b.chunks.push(chunk)
    }
    const offered = b.feed.offer(follower.packet(line, now, chunk))
    if (offered === "taken") chunk.offered(b.endpoint)
    if (offered !== "taken") {
      if (chunk.outstanding === 0) b.chunks.pop()
      b.out.length = 0
      if (offered === "gone") {
        forget(follower, b.endpoint)
        follower.onResume()
        return "gone"
      }
      b.mark = { gen, offset: resume, from: line.position }
      b.reader = undefined
      return "full"
    }
    last = line.position
  }
  b.out.length = 0
  if (ended) {
    const next = follower.gens[follower.gens.indexOf(gen) + 1]
    if (gen.fd === undefined) follower.counts.unrecovered++
    if (next === undefined) {
      // The file was deleted and this drain read it all.
      follower.behind.delete(b.endpoint)
      follower.release()
      follower.onResume()
      return "caughtUp"
    }
    b.mark = { gen: next, offset: 0, from: Number.NEGATIVE_INFINITY }
    b.reader = undefined
    follower.release()
    return "more"
  }
  if (atHead && reader.offset >= Math.floor(follower.lastPos)) {
    b.rejoinAt = { gen: follower.gen, from: follower.lastPos }
    b.reader = undefined
    follower.release()
    follower.onResume()
    return "caughtUp"
  }
  b.mark = { gen, offset: reader.resumeOffset, from: Number.isNaN(last) ? b.mark.from : last + POSITION_STEP / 2 }
  return "more"
}

/** Bytes between where `b` is and the head. */
export const backlogBytes = (follower: FileFollower, b: Behind): number => {
  if (b.rejoinAt !== undefined) return 0
  const at = b.reader?.offset ?? b.mark.offset
  if (b.mark.gen === follower.gen) return Math.max(0, follower.reader.offset - at)
  let bytes = Math.max(0, (b.mark.gen.size ?? at) - at)
  for (const gen of follower.gens) {
    if (gen.seq <= b.mark.gen.seq) continue
    if (gen === follower.gen) {
      bytes += follower.reader.offset
      break
    }
    bytes += gen.size ?? 0
  }
  return bytes
}

/**
 * A drain more than `maxBacklogBytes` behind loses its oldest lines, down to 90 % of the limit:
 * whole generations first, then up to a line start in the head's. Counted for the drain.
 */
const limitBacklog = (follower: FileFollower, b: Behind): void => {
  const over = backlogBytes(follower, b) - follower.options.maxBacklogBytes
  if (over <= 0) return
  let skip = over + Math.floor(follower.options.maxBacklogBytes / 10)
  let lines = 0
  let mark = b.mark
  let at = b.reader?.offset ?? mark.offset
  while (skip > 0) {
    const gen = mark.gen
    const end = gen === follower.gen ? follower.reader.offset : (gen.size ?? at)
    if (end - at <= skip && gen !== follower.gen) {
      lines += countLines(gen, at, end, mark.from)
      skip -= end - at
      const next = follower.gens[follower.gens.indexOf(gen) + 1]!
      mark = { gen: next, offset: 0, from: Number.NEGATIVE_INFINITY }
      at = 0
      continue
    }
    const target = lineStartAfter(gen, Math.min(end, at + skip), end)
    lines += countLines(gen, at, target, mark.from)
    mark = { gen, offset: target, from: target }
    break
  }
  b.mark = mark
  b.reader = undefined
  b.out.length = 0
  follower.counts.backlogDropped += lines
  b.feed.dropped(lines, "backlog_limit")
  follower.release()
}
