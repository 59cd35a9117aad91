/**
 * The container log input in a test's scope: Ingest and Readiness for the whole test, a collector
 * of every packet routed (as a router routing each packet to one drain that delivers it at once),
 * and the input, started and stopped at will (a stop closes its scope: the shutdown path,
 * checkpoint included). Used by the container input's in-process tests.
 */
import { Context, Duration, Effect, Exit, Layer, Scope } from "effect"
import { Ingest } from "../../src/layers/routing/Ingest.ts"
import * as ContainerLogs from "../../src/layers/inputs/containers/ContainerLogs.ts"
import * as PodMetadata from "../../src/layers/kubernetes/PodMetadata.ts"
import { Readiness } from "../../src/layers/Readiness.ts"
import { Checkpoints } from "../../src/layers/storage/Checkpoints.ts"
import * as IngestCollector from "./IngestCollector.ts"
import type * as NodeLayout from "./NodeLayout.ts"

/** The input's options, and where its checkpoints go. */
export type TestOptions = ContainerLogs.Options & { readonly stateDir: string }

export const options = (dirs: NodeLayout.NodeLayout, overrides: Partial<TestOptions> = {}): TestOptions => ({
  path: dirs.containers,
  stateDir: dirs.state,
  excludeNamespaces: [],
  onlyAkkeris: false,
  maxLineBytes: 64 * 1024,
  partialTimeout: Duration.seconds(5),
  pollInterval: Duration.millis(20),
  rescanInterval: Duration.millis(200),
  checkpointInterval: Duration.millis(200),
  rotateWait: Duration.millis(500),
  goneGrace: Duration.millis(300),
  ...overrides
})

/**
 * Ingest and Readiness for the whole test, a collector of every packet routed, and the input,
 * started and stopped at will (a stop closes its scope: the shutdown path, checkpoint included).
 */
export const harness = (options: { readonly capacity?: number; readonly consume?: boolean } = {}) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(Layer.mergeAll(Ingest.layer({ capacity: options.capacity ?? 10_000 }), Readiness.layer))
    const { consume, messages, received } = IngestCollector.make(Context.get(context, Ingest))
    if (options.consume ?? true) yield* consume
    /** Until the collector has taken what was queued (nothing more arrives for 100 ms). */
    const taken = Effect.gen(function*() {
      for (let seen = -1, waited = 0; received.length !== seen && waited < 3000; waited += 100) {
        seen = received.length
        yield* Effect.sleep("100 millis")
      }
    })
    const start = (opts: TestOptions) =>
      Effect.gen(function*() {
        // As in the program, the checkpoints are saved last: after the input has stopped and what
        // it had queued was delivered (there the drains flush; here the collector takes it).
        const saving = yield* Scope.make()
        const reading = yield* Scope.make()
        yield* Effect.addFinalizer(() => Effect.andThen(Scope.close(reading, Exit.void), Scope.close(saving, Exit.void)))
        const checkpoints = yield* Layer.buildWithScope(Checkpoints.layer(opts.stateDir), saving)
        const input = ContainerLogs.layer(opts).pipe(Layer.provide(PodMetadata.fromNames(false)))
        yield* Layer.buildWithScope(input, reading).pipe(Effect.provide(Context.merge(context, checkpoints)))
        return Effect.gen(function*() {
          yield* Scope.close(reading, Exit.void)
          yield* taken
          yield* Scope.close(saving, Exit.void)
        })
      })
    return { received, messages, start, consume }
  })

