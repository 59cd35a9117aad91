/**
 * The drain compliance suite: the promises every drain kind must keep, checked through the real
 * Drains service and DrainRunner against a real receiver of the kind.
 *
 * A kind joins by describing a receiver it can deliver to, and which promises its protocol allows
 * it to keep. The suite checks that the drain
 *
 * 1. delivers every packet, in order;
 * 2. keeps and resends, in order, what it could not deliver while the receiver was down — unless
 *    the protocol cannot tell (UDP: a datagram sent to a receiver that just went away is lost);
 * 3. delivers what it holds when it is closed (same exception);
 * 4. drops (and counts) what the receiver rejects for good, and goes on — for protocols that let a
 *    receiver refuse data (HTTP, Elasticsearch), not for syslog over a socket;
 * 5. never shows credentials from its URL in logs, metric labels or errors.
 *
 * A promise a kind cannot keep is declared in `guarantees`, so it is not tested, rather than
 * tested vacuously.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Scope } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import * as DrainsHarness from "../../helpers/DrainsHarness.ts"

export interface Receiver {
  /** A drain URL that delivers here; `secret` must appear in it (as a password or token) when the kind takes credentials. */
  readonly url: string
  /** Messages received, in order of arrival. */
  readonly received: () => Array<string>
  readonly down: Effect.Effect<void>
  readonly up: Effect.Effect<void>
  /** Makes the receiver refuse data for good (for kinds with `guarantees.rejects`). */
  readonly reject?: ((on: boolean) => Effect.Effect<void>) | undefined
}

export interface Guarantees {
  /** Whether an outage of the receiver loses nothing (false for UDP). */
  readonly resendsAfterOutage: boolean
  /** Whether receivers can refuse data for good, and the drain drops it as `rejected`. */
  readonly rejects: boolean
}

export interface ComplianceTarget<R = never> {
  readonly kind: string
  readonly guarantees: Guarantees
  /** Starts a receiver for the test's scope. */
  readonly receiver: (secret: string) => Effect.Effect<Receiver, never, Scope.Scope | R>
  /** Services the kind needs (e.g. where stdout:// writes). */
  readonly layer?: Layer.Layer<R> | undefined
  /** How long delivery of a few packets may take. */
  readonly within?: Duration.Duration | undefined
}

const packet = (i: number) =>
  LogPacket.make({ time: new Date(Date.UTC(2024, 0, 1, 0, 0, 0, i)), hostname: "compliance", tag: "suite", message: `message ${i}` })

const messages = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `message ${from + i}`)

const openDrains = DrainsHarness.open()

export const runDrainCompliance = <R>(target: ComplianceTarget<R>) =>
  describe(`drain compliance: ${target.kind}`, () => {
    const within = target.within ?? Duration.seconds(5)
    const live = <A, E>(name: string, body: Effect.Effect<A, E, Scope.Scope | R>) =>
      it.live(name, () => (target.layer === undefined ? body : Effect.provide(body, target.layer)) as Effect.Effect<A, E, Scope.Scope>, 30_000)

    live("delivers every packet, in order", Effect.gen(function*() {
      const receiver = yield* target.receiver("s3cret-1")
      const { drains, close } = yield* openDrains
      const drain = yield* drains.open(receiver.url)
      for (let i = 0; i < 100; i++) drain.offer(packet(i))
      // The receiver may hold a batch before the drain has read the answer that counts it as sent.
      yield* DrainsHarness.waitUntil(
        () => receiver.received().length >= 100 && drain.stats.sent >= 100,
        within,
        () => `received ${receiver.received().length}/100, sent ${drain.stats.sent}`
      )
      assert.deepStrictEqual(receiver.received(), messages(0, 100))
      assert.strictEqual(drain.stats.sent, 100)
      yield* close
    }))

    if (target.guarantees.resendsAfterOutage) {
    live("keeps and resends, in order, what it could not deliver while the receiver was down", Effect.gen(function*() {
      const receiver = yield* target.receiver("s3cret-2")
      const { drains, close } = yield* openDrains
      const drain = yield* drains.open(receiver.url)
      drain.offer(packet(0))
      yield* DrainsHarness.waitUntil(() => receiver.received().length >= 1, within, () => "first packet")
      yield* receiver.down
      yield* Effect.sleep("50 millis")
      for (let i = 1; i < 30; i++) drain.offer(packet(i))
      yield* Effect.sleep("300 millis")
      assert.strictEqual(receiver.received().length, 1, "nothing arrives while the receiver is down")
      yield* receiver.up
      const firsts = () => [...new Set(receiver.received())]
      yield* DrainsHarness.waitUntil(() => firsts().length >= 30, within, () => `${firsts().length}/30`)
      // In order; a message twice only if the drain wrote it again and counts it so (a TCP
      // receiver that goes away cannot say what it had read of what it was last sent).
      assert.deepStrictEqual(firsts(), messages(0, 30))
      assert.isAtMost(receiver.received().length - 30, drain.stats.resent, `${receiver.received().join(",")}`)
      assert.isTrue(drain.stats.healthy)
      yield* close
    }))

      live("delivers what it holds when it is closed", Effect.gen(function*() {
        const receiver = yield* target.receiver("s3cret-3")
        const { drains, close } = yield* openDrains
        yield* receiver.down
        const drain = yield* drains.open(receiver.url)
        for (let i = 0; i < 50; i++) drain.offer(packet(i))
        yield* Effect.sleep("200 millis")
        const closing = yield* Effect.forkChild(close)
        yield* Effect.sleep("100 millis")
        assert.isUndefined(closing.pollUnsafe(), "closing waits for the drain to deliver")
        yield* receiver.up
        yield* Fiber.join(closing)
        assert.strictEqual(drain.stats.sent, 50)
        assert.strictEqual(drain.stats.dropped.shutdown, 0)
        // Delivered means handed to the transport; give the bytes a moment to arrive.
        yield* DrainsHarness.waitUntil(() => receiver.received().length >= 50, within, () => `${receiver.received().length}/50`)
        assert.deepStrictEqual(receiver.received(), messages(0, 50))
      }))
    }

    if (target.guarantees.rejects) {
      live("drops what the receiver rejects for good, counts it, and goes on", Effect.gen(function*() {
        const receiver = yield* target.receiver("s3cret-4")
        const { drains, close } = yield* openDrains
        const drain = yield* drains.open(receiver.url)
        yield* receiver.reject!(true)
        for (let i = 0; i < 5; i++) drain.offer(packet(i))
        yield* DrainsHarness.waitUntil(() => drain.stats.dropped.rejected === 5, within, () => `rejected: ${drain.stats.dropped.rejected}`)
        yield* receiver.reject!(false)
        for (let i = 5; i < 10; i++) drain.offer(packet(i))
        yield* DrainsHarness.waitUntil(() => receiver.received().length >= 5, within, () => `${receiver.received().length}/5`)
        assert.deepStrictEqual(receiver.received(), messages(5, 10))
        assert.strictEqual(drain.stats.retries, 0)
        yield* close
      }))
    }

    live("never shows credentials from its URL in logs, metric labels or errors", Effect.gen(function*() {
      // URL-special characters: a parser that cuts the URL at them would show a piece of it.
      const secret = "s3c?r@t-5"
      const receiver = yield* target.receiver(secret)
      const { drains, logs, close } = yield* openDrains
      yield* receiver.down
      const drain = yield* drains.open(receiver.url)
      for (let i = 0; i < 5; i++) drain.offer(packet(i))
      yield* Effect.sleep("300 millis")
      const metrics = yield* PrometheusMetrics.format()
      assert.include(metrics, `drain="${drain.display}"`)
      yield* receiver.up
      if (target.guarantees.rejects) {
        // A refusal, too, is logged: with the receiver's words, never with the secret.
        yield* DrainsHarness.waitUntil(() => drain.stats.sent >= 5, within, () => `sent ${drain.stats.sent}/5`)
        yield* receiver.reject!(true)
        drain.offer(packet(5))
        yield* DrainsHarness.waitUntil(() => drain.stats.dropped.rejected >= 1, within, () => "a refusal")
        yield* receiver.reject!(false)
      }
      const later = yield* PrometheusMetrics.format()
      yield* close
      const shown = [drain.display, metrics, later, ...logs].join("\n")
      assert.isAbove(logs.length, 0)
      for (const form of [secret, encodeURIComponent(secret), JSON.stringify(secret), "s3c", "r@t-5"]) {
        assert.notInclude(shown, form)
      }
    }))
  })
