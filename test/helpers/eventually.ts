/** Polling for things that happen asynchronously (a watch event, a notification, a delivery): one helper for all the tests. */
import { assert } from "@effect/vitest"
import { Duration, Effect } from "effect"

/** What is polled: a plain function, or an effect (run afresh at every poll). */
export type Probe<A, E = never, R = never> = (() => A) | Effect.Effect<A, E, R>

const probe = <A, E, R>(what: Probe<A, E, R>): Effect.Effect<A, E, R> => (Effect.isEffect(what) ? what : Effect.sync(what))

/** Polls `what` every 20 ms until it deep-equals `expected`; after `within`, fails with the difference. */
export const eventually = <A, E = never, R = never>(
  what: Probe<A, E, R>,
  expected: A,
  describe: string,
  within: Duration.Input = "5 seconds"
) =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(Duration.fromInputUnsafe(within))
    while (true) {
      const value = yield* probe(what)
      if (JSON.stringify(value) === JSON.stringify(expected)) return
      if (Date.now() > deadline) assert.deepStrictEqual(value, expected, describe)
      yield* Effect.sleep("20 millis")
    }
  })

/** Polls `condition` every 10 ms until it holds; after `within`, dies saying what it waited for. */
export const waitUntil = <E = never, R = never>(condition: Probe<boolean, E, R>, within: Duration.Input, what: () => string) =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(Duration.fromInputUnsafe(within))
    while (!(yield* probe(condition))) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting: ${what()}`))
      yield* Effect.sleep("10 millis")
    }
  })
