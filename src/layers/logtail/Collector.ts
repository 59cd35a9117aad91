/**
 * logtail's consumer of what its inputs receive: each packet goes to the open live tails of its
 * hostname, and, as a Deis line, to the recent-logs buffer of that app. A write the storage refuses
 * (Redis away) is retried with backoff, and meanwhile nothing more is taken from the queue — so
 * TCP senders are held back rather than lines lost.
 */
import { Effect, Layer, Schedule, Stream } from "effect"
import * as RecentLogsDomain from "../../domain/RecentLogs.ts"
import { Ingest } from "../Ingest.ts"
import * as Log from "../Log.ts"
import * as Telemetry from "../Telemetry.ts"
import { LiveTails } from "./LiveTails.ts"
import { RecentLogs } from "./RecentLogs.ts"

export const layer = Layer.effectDiscard(Effect.gen(function*() {
  const ingest = yield* Ingest
  const recent = yield* RecentLogs
  const tails = yield* LiveTails
  const stats = { stored: 0, errors: 0 }
  yield* Telemetry.counter("logtail_lines_stored_total", "Lines written to the recent-logs buffer.", { adapter: recent.adapter }, () =>
    stats.stored)
  yield* Telemetry.counter("logtail_storage_errors_total", "Writes the recent-logs storage refused (retried).", { adapter: recent.adapter }, () =>
    stats.errors)

  // Backing off from 100 ms to at most 5 s between tries.
  const retry = Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])
  yield* ingest.packets.pipe(
    Stream.runForEachArray((packets) =>
      Effect.gen(function*() {
        tails.publish(packets)
        const lines = packets.map((p) => [p.hostname, RecentLogsDomain.formatLine(p)] as const)
        yield* recent.write(lines).pipe(
          Effect.tapError((error) =>
            Effect.andThen(Effect.sync(() => stats.errors++), Log.warn("recent logs: write failed, retrying", { error: error.message }))
          ),
          Effect.retry(retry),
          Effect.orDie
        )
        stats.stored += lines.length
      })
    ),
    Effect.forkScoped
  )
}))
