/**
 * A drain sink that keeps what it is sent, for testing the DrainRunner: it can be told to fail the
 * next sends (retryably or not) and to hold sends until released, like a slow receiver.
 */
import { Effect, Latch } from "effect"
import type { LogPacket } from "../../src/domain/LogPacket.ts"
import { DrainError, type DrainErrorReason } from "../../src/layers/drains/DrainError.ts"
import type { DrainSettings, DrainSink } from "../../src/layers/drains/DrainSink.ts"

export interface MemorySink extends DrainSink {
  readonly batches: Array<ReadonlyArray<LogPacket>>
  readonly messages: () => Array<string>
  /** Send attempts, failed ones included. */
  attempts: number
  /** Senders opened (one per worker). */
  senders: number
  /** The next `n` sends fail with `reason`. */
  failNext(n: number, reason?: DrainErrorReason): void
  /** Sends wait until `open` is called. */
  readonly gate: Latch.Latch
}

export const make = (settings?: Partial<DrainSettings>): Effect.Effect<MemorySink> =>
  Effect.gen(function*() {
    const gate = yield* Latch.make(true)
    let failures = 0
    let failReason: DrainErrorReason = "Connect"
    const sink: MemorySink = {
      batches: [],
      messages: () => sink.batches.flatMap((batch) => batch.map((p) => p.message)),
      attempts: 0,
      senders: 0,
      gate,
      settings,
      failNext(n, reason = "Connect") {
        failures = n
        failReason = reason
      },
      sender: Effect.sync(() => {
        sink.senders++
        return {
          send: (batch) =>
            Effect.gen(function*() {
              yield* gate.await
              sink.attempts++
              if (failures > 0) {
                failures--
                return yield* new DrainError({ reason: failReason, drain: "memory://", detail: "told to fail" })
              }
              sink.batches.push(batch)
            })
        }
      })
    }
    return sink
  })
