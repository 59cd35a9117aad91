/**
 * logtail's consumer of what its inputs receive: each packet goes at once to the live tails of its
 * hostname, and, as a Deis line, to the recent-logs buffer of that app.
 *
 * Storing runs beside the tails, through a bounded queue of lines, so a tail never waits for a
 * store's batching (Redis pipelines wait up to a second to fill). What the store refuses for good
 * (a key it can never write) is dropped and counted by reason, and the other apps' lines are
 * stored; a store that is unavailable (Redis away, disk full) is tried again with backoff, with
 * only the lines it did not write — meanwhile the queue fills and nothing more is read, so TCP
 * senders are held back rather than lines lost.
 */
import { Effect, Layer, Option, Queue, Scope, Stream } from "effect"
import * as RecentLogsDomain from "../../domain/RecentLogs.ts"
import { Ingest } from "../routing/Ingest.ts"
import * as Log from "../Log.ts"
import * as Telemetry from "../Telemetry.ts"
import { LiveTails } from "./LiveTails.ts"
import { type AppLine, RecentLogs, type Refusal } from "../storage/RecentLogs.ts"

export interface Options {
  /** Lines waiting to be stored before the inputs are held back. */
  readonly bufferLines?: number | undefined
}

/** Most lines per write when the store asks for no batching. */
const MAX_WRITE = 1000
/** Most distinct drop reasons given their own series; the rest are `other`. */
const MAX_REASONS = 32
const WARN_EVERY_MS = 10_000

export const layer = (options: Options = {}) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const ingest = yield* Ingest
    const recent = yield* RecentLogs
    const tails = yield* LiveTails
    const scope = yield* Effect.scope
    const adapter = recent.adapter
    const stats = { stored: 0, errors: 0 }
    const dropped = new Map<string, { count: number }>()
    yield* Telemetry.counter("logtail_lines_stored_total", "Lines written to the recent-logs buffer.", { adapter }, () => stats.stored)
    yield* Telemetry.counter(
      "logtail_storage_errors_total",
      "Writes that failed because the store was unavailable (tried again).",
      { adapter },
      () => stats.errors
    )

    const countDropped = (reason: string, lines: number) =>
      Effect.gen(function*() {
        const key = dropped.has(reason) || dropped.size < MAX_REASONS ? reason : "other"
        let series = dropped.get(key)
        if (series === undefined) {
          const created = { count: 0 }
          dropped.set(key, series = created)
          yield* Telemetry.counter(
            "logtail_storage_dropped_total",
            "Lines the recent-logs store refused for good (a key it can never write), by reason.",
            { adapter, reason: key },
            () => created.count
          ).pipe(Scope.provide(scope))
        }
        series.count += lines
      })

    // At most one warning of each kind every 10 s.
    const warned = new Map<string, number>()
    const warnSometimes = (kind: string, message: string, fields: Record<string, unknown>) =>
      Effect.suspend(() => {
        const now = Date.now()
        if (now - (warned.get(kind) ?? 0) < WARN_EVERY_MS) return Effect.void
        warned.set(kind, now)
        return Log.warn(message, fields)
      })

    const refuse = (refused: ReadonlyArray<Refusal>) =>
      Effect.forEach(refused, (refusal) =>
        Effect.andThen(
          countDropped(refusal.reason, refusal.lines),
          warnSometimes(`refused:${refusal.reason}`, "recent logs: the store refused an app's lines for good; dropped", {
            adapter,
            reason: refusal.reason,
            app: refusal.app.length > 64 ? `${refusal.app.slice(0, 64)}…` : refusal.app,
            lines: refusal.lines
          })
        ), { discard: true })

    const store = (lines: ReadonlyArray<AppLine>) =>
      Effect.gen(function*() {
        let pending = lines
        for (let attempt = 0;; attempt++) {
          const result = yield* Effect.result(recent.write(pending))
          if (result._tag === "Success") {
            const refused = result.success.refused
            let refusedLines = 0
            for (const refusal of refused) refusedLines += refusal.lines
            stats.stored += pending.length - refusedLines
            if (refused.length > 0) yield* refuse(refused)
            return
          }
          const error = result.failure
          stats.errors++
          const unwritten = error.unwritten ?? pending
          stats.stored += pending.length - unwritten.length
          pending = unwritten
          yield* warnSometimes("unavailable", "recent logs: the store is unavailable; trying again (inputs are held back meanwhile)", {
            error: error.message
          })
          // Backing off from 100 ms to at most 5 s between tries.
          yield* Effect.sleep(Math.min(100 * 2 ** Math.min(attempt, 6), 5000))
        }
      })

    const queue = yield* Queue.bounded<AppLine>(Math.max(options.bufferLines ?? 10_000, MAX_WRITE))
    const batching = recent.batching
    const gather: Effect.Effect<ReadonlyArray<AppLine>> = batching === undefined || batching.lines <= 1
      ? Queue.takeBetween(queue, 1, MAX_WRITE)
      : Effect.gen(function*() {
        // As deis/logger: a batch goes once it holds `lines`, or `timeoutMillis` after its first
        // line; it takes what is waiting then (up to MAX_WRITE), so a busy store gets big batches.
        const lines: Array<AppLine> = [...(yield* Queue.takeBetween(queue, 1, MAX_WRITE))]
        const deadline = Date.now() + batching.timeoutMillis
        while (lines.length < batching.lines) {
          const left = deadline - Date.now()
          if (left <= 0) break
          const more = yield* Queue.takeBetween(queue, 1, MAX_WRITE - lines.length).pipe(Effect.timeoutOption(left))
          if (Option.isNone(more)) break
          for (const line of more.value) lines.push(line)
        }
        return lines
      })

    // What is still queued at shutdown gets one try (after both fibers below have stopped).
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const left = yield* Queue.clear(queue)
        if (left.length === 0) return
        const result = yield* Effect.result(recent.write(left))
        if (result._tag === "Success") stats.stored += left.length
      }).pipe(Effect.timeout("2 seconds"), Effect.ignore)
    )
    yield* Effect.forever(Effect.flatMap(gather, store)).pipe(Effect.forkScoped)
    yield* ingest.packets.pipe(
      Stream.runForEachArray((packets) =>
        Effect.suspend(() => {
          tails.publish(packets)
          const lines: Array<AppLine> = []
          for (const packet of packets) lines.push([packet.hostname, RecentLogsDomain.formatLine(packet)])
          return Queue.offerAll(queue, lines)
        })
      ),
      Effect.forkScoped
    )
  }))
