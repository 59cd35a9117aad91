import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import * as DrainSink from "../../../src/layers/drains/DrainSink.ts"
import { Drains } from "../../../src/layers/routing/Drains.ts"
import * as MemoryDrains from "../../helpers/MemoryDrains.ts"

const packet = (message: string) => LogPacket.make({ time: new Date(0), hostname: "app", tag: "web", message })

describe("Drains", () => {
  it.effect("on shutdown, 12 drains that cannot deliver flush all at once: the stop takes one flush timeout, not twelve", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryDrains.make
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        Drains.layer.pipe(
          Layer.provide(Layer.succeed(DrainSink.DrainSettings, { flushTimeout: Duration.seconds(5), retryMaxDelay: Duration.seconds(1) })),
          Layer.provide(memory.layer)
        ),
        scope
      )
      const drains = Context.get(context, Drains)
      for (let i = 0; i < 12; i++) {
        const endpoint = `syslog+tcp://receiver-${i}:514`
        const sink = yield* memory.drains.sink(endpoint)
        sink.failNext(1_000_000)
        const drain = yield* drains.open(endpoint)
        drain.offer(packet(`m${i}`))
      }
      yield* TestClock.adjust("1 second")
      const stop = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("5 seconds")
      yield* TestClock.adjust("100 millis")
      const stopped = stop.pollUnsafe()
      assert.isDefined(stopped, "every drain gave up after one flush timeout (5 s): the stop is over")
      yield* Fiber.join(stop)
    }))
})
