/** Polling assertions for things that happen asynchronously (a watch event, a notification). */
import { assert } from "@effect/vitest"
import { Duration, Effect } from "effect"

/** Polls `what()` until it deep-equals `expected`; after `within`, fails with the difference. */
export const eventually = <A>(what: () => A, expected: A, describe: string, within: Duration.Input = "5 seconds") =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(Duration.fromInputUnsafe(within))
    while (JSON.stringify(what()) !== JSON.stringify(expected)) {
      if (Date.now() > deadline) assert.deepStrictEqual(what(), expected, describe)
      yield* Effect.sleep("20 millis")
    }
  })
