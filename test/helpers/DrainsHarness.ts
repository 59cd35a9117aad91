/**
 * The real Drains service in its own scope, with test-friendly settings (small batches, fast
 * retries), collecting every log line it writes.
 */
import { Context, Duration, Effect, Exit, Layer, Logger, Scope } from "effect"
import * as DrainSink from "../../src/layers/drains/DrainSink.ts"
import { Drains } from "../../src/layers/routing/Drains.ts"

export const testSettings: Partial<DrainSink.DrainSettings> = {
  batchSize: 10,
  batchTimeout: Duration.zero,
  retryBaseDelay: Duration.millis(20),
  retryMaxDelay: Duration.millis(200),
  flushTimeout: Duration.seconds(10)
}

export const open = (settings: Partial<DrainSink.DrainSettings> = testSettings) =>
  Effect.gen(function*() {
    const logs: Array<string> = []
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      Drains.layer.pipe(
        Layer.provide(Layer.succeed(DrainSink.DrainSettings, settings)),
        Layer.provide(Logger.layer([Logger.map(Logger.formatJson, (line) => {
          logs.push(line)
        })]))
      ),
      scope
    )
    return { drains: Context.get(context, Drains), logs, close: Scope.close(scope, Exit.void) }
  })

/** Polls until a condition holds (the tests' one polling helper). */
export { waitUntil } from "./eventually.ts"
