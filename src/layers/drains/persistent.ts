/**
 * `persistent://key` drains: lines stored in Postgres (see storage/PersistentLogs), read back at
 * `GET {PERSISTENT_PATH}key`. Batches are gathered for up to a second, as the original flushed;
 * one row is written per batch. Without persistent storage configured (PERSISTENT=true and
 * PERSISTENT_DATABASE_URL), the drain cannot open — as in the original — and drops what it gets
 * as `unsupported`, saying why once.
 */
import { Duration, Effect, Option } from "effect"
import type { PersistentDrainUrl } from "../../domain/DrainUrl.ts"
import * as Rfc5424 from "../../domain/syslog/Rfc5424.ts"
import { PersistentLogs } from "../storage/PersistentLogsService.ts"
import { DrainError } from "./DrainError.ts"
import type { DrainSink } from "./DrainSink.ts"

export const make = (url: PersistentDrainUrl): Effect.Effect<DrainSink, DrainError> =>
  Effect.gen(function*() {
    const store = yield* Effect.serviceOption(PersistentLogs)
    if (Option.isNone(store)) {
      return yield* new DrainError({
        reason: "Unsupported",
        drain: url.display,
        detail: "persistent storage is not configured (PERSISTENT=true and PERSISTENT_DATABASE_URL)"
      })
    }
    return {
      settings: { batchTimeout: Duration.seconds(1) },
      // One writer per key keeps its rows in order.
      maxWorkers: 1,
      sender: Effect.succeed({
        send: (batch) =>
          Effect.mapError(
            store.value.append(url.key, batch.map((packet) => Rfc5424.format(packet).replace(/\r?\n/g, " "))),
            (error) => new DrainError({ reason: "Write", drain: url.display, detail: error.message })
          )
      })
    } satisfies DrainSink
  })
