/**
 * A live, trimmed copy of one kind of Kubernetes object: list, then watch from the list's
 * resourceVersion, for as long as the scope lives.
 *
 * - A watch that ends (the server's timeout, an idle connection, a cut) is resumed from the last
 *   resourceVersion seen — events and bookmarks both advance it — so nothing is missed and nothing
 *   is read twice.
 * - A `410 Gone`/Expired (that version is no longer kept) means events were lost: the informer
 *   lists again and hands listeners the whole new set (`Synced`), from which they work out what
 *   was added and removed while it was away. Failures in a row back off up to 30 s; /readyz says
 *   "not ready" while listing fails.
 * - Listeners get events in order, in batches, one batch at a time. A listener added after the
 *   first list gets a `Synced` with the current set first, so the order in which components start
 *   does not matter.
 */
import { Effect, Latch, Queue, Schedule, type Scope, Semaphore, Stream } from "effect"
import type { KubeObject } from "../../domain/Kubernetes.ts"
import * as Log from "../Log.ts"
import { Readiness } from "../Readiness.ts"
import * as Telemetry from "../Telemetry.ts"
import { KubeApi, type KubeError, type ResourceType, type WatchEvent } from "./KubeApi.ts"

export type InformerEvent =
  /** Every object there is now; whatever a listener knew and is not here was deleted. */
  | { readonly _tag: "Synced"; readonly objects: ReadonlyArray<KubeObject> }
  | { readonly _tag: "Upserted"; readonly object: KubeObject }
  | { readonly _tag: "Deleted"; readonly object: KubeObject }

export type Listener = (events: ReadonlyArray<InformerEvent>) => Effect.Effect<void>

export interface Informer {
  readonly resource: ResourceType
  /** The object named `name` in `namespace`, as last seen. */
  readonly get: (namespace: string, name: string) => KubeObject | undefined
  readonly objects: () => Iterable<KubeObject>
  readonly size: () => number
  /** Adds a listener: it first gets a `Synced` with the current set, if the first list is done. */
  readonly listen: (listener: Listener) => Effect.Effect<void>
  /** Waits for the first list. */
  readonly synced: Effect.Effect<void>
}

export interface Options {
  /** E.g. `spec.nodeName=node-1`: only pods of this node. */
  readonly fieldSelector?: string | undefined
}

const keyOf = (namespace: string, name: string) => `${namespace}/${name}`

/** Backoff between failures in a row: 250 ms doubling, at most 30 s, with jitter. */
const backoff = Schedule.jittered(Schedule.min([Schedule.exponential("250 millis"), Schedule.spaced("30 seconds")]))

/** Starts an informer; it follows the API until the scope closes. */
export const make = (
  resource: ResourceType,
  options: Options = {}
): Effect.Effect<Informer, never, KubeApi | Readiness | Scope.Scope> =>
  Effect.gen(function*() {
    const api = yield* KubeApi
    const check = yield* (yield* Readiness).register(`kubernetes:${resource.plural}`)
    const cache = new Map<string, KubeObject>()
    const listeners: Array<Listener> = []
    const lock = yield* Semaphore.make(1)
    const firstSync = yield* Latch.make(false)
    let synced = false
    const stats = { relists: 0, watches: 0, watchFailures: 0, events: 0 }
    const labels = { resource: resource.plural }

    yield* Telemetry.gauge("logtrain_kubernetes_objects", "Kubernetes objects followed (trimmed copies kept).", labels, () => cache.size)
    yield* Telemetry.counter("logtrain_kubernetes_lists_total", "Full lists read (the first, and after a 410 Gone or a failure).", labels, () => stats.relists)
    yield* Telemetry.counter("logtrain_kubernetes_watches_total", "Watch requests started.", labels, () => stats.watches)
    yield* Telemetry.counter("logtrain_kubernetes_watch_failures_total", "Watches that failed (cut, refused, 410 Gone).", labels, () => stats.watchFailures)
    yield* Telemetry.counter("logtrain_kubernetes_events_total", "Watch events applied.", labels, () => stats.events)

    const deliver = (events: ReadonlyArray<InformerEvent>) =>
      Effect.forEach(listeners, (listener) => listener(events), { discard: true })

    const list = Effect.gen(function*() {
      const result = yield* api.list(resource, { fieldSelector: options.fieldSelector })
      stats.relists++
      yield* lock.withPermits(1)(Effect.gen(function*() {
        cache.clear()
        for (const object of result.objects) cache.set(keyOf(object.namespace, object.name), object)
        synced = true
        yield* deliver([{ _tag: "Synced", objects: result.objects }])
      }))
      yield* firstSync.open
      yield* check.ready
      return result.resourceVersion
    })

    /** Applies a batch of watch events; returns the last resourceVersion. */
    const apply = (batch: ReadonlyArray<WatchEvent>) =>
      lock.withPermits(1)(Effect.suspend(() => {
        const events: Array<InformerEvent> = []
        for (const event of batch) {
          if (event.type === "BOOKMARK") continue
          const key = keyOf(event.object.namespace, event.object.name)
          if (event.type === "DELETED") {
            cache.delete(key)
            events.push({ _tag: "Deleted", object: event.object })
          } else {
            cache.set(key, event.object)
            events.push({ _tag: "Upserted", object: event.object })
          }
        }
        stats.events += events.length
        return events.length === 0 ? Effect.void : deliver(events)
      }))

    /** Watches from `version` until the watch ends; returns the last version seen. */
    const watch = (version: string) =>
      Effect.suspend(() => {
        let last = version
        stats.watches++
        return Stream.callback<WatchEvent, KubeError>((queue) =>
          Effect.andThen(
            api.watch(resource, { resourceVersion: version, fieldSelector: options.fieldSelector }, (event) => {
              Queue.offerUnsafe(queue, event)
            }),
            Queue.end(queue)
          )
        ).pipe(
          Stream.runForEachArray((batch) => {
            const newest = batch[batch.length - 1]?.resourceVersion
            if (newest !== undefined && newest !== "") last = newest
            return apply(batch)
          }),
          Effect.as(last),
          Effect.tapError(() => Effect.sync(() => stats.watchFailures++)),
          // A failure after some events still resumes from what was seen.
          Effect.mapError((error) => ({ error, last }))
        )
      })

    /** Where the next pass resumes: undefined to list first (at start, and after a 410). */
    let version: string | undefined
    /** Failures in a row, for the logs (the backoff counts its own). */
    let failures = 0

    /** One pass: a list if there is no version to resume from, then a watch until it ends. */
    const pass = Effect.gen(function*() {
      if (version === undefined) {
        version = yield* Effect.mapError(list, (error) => ({ error, during: "list" as const }))
      }
      const ended = yield* Effect.result(watch(version))
      if (ended._tag === "Success") {
        version = ended.success
        return
      }
      const { error, last } = ended.failure
      if (error.reason === "Expired") {
        // Events were lost: list again, and the listeners work out the difference.
        yield* Log.info("kubernetes watch expired (410 Gone); listing again", { resource: resource.plural })
        version = undefined
        return
      }
      // Resume from the last version seen; if the server no longer has it, that is a 410 next.
      version = last
      return yield* Effect.fail({ error, during: "watch" as const })
    })

    const failed = ({ during, error }: { readonly error: KubeError; readonly during: "list" | "watch" }) =>
      Effect.gen(function*() {
        failures++
        if (during === "list") {
          yield* check.notReady(error.message)
          yield* Log.warn("kubernetes list failed; retrying", { resource: resource.plural, error: error.message, failures })
        } else {
          yield* (failures === 1 ? Log.info : Log.warn)("kubernetes watch ended with an error; resuming", {
            resource: resource.plural,
            error: error.message,
            failures
          })
        }
      })

    // Each pass that ends well starts the backoff over.
    const follow = pass.pipe(
      Effect.tapError(failed),
      Effect.retry(backoff),
      Effect.andThen(Effect.sync(() => {
        failures = 0
      })),
      Effect.forever
    )

    yield* Effect.forkScoped(follow)

    return {
      resource,
      get: (namespace, name) => cache.get(keyOf(namespace, name)),
      objects: () => cache.values(),
      size: () => cache.size,
      listen: (listener) =>
        lock.withPermits(1)(Effect.suspend(() => {
          listeners.push(listener)
          return synced ? listener([{ _tag: "Synced", objects: [...cache.values()] }]) : Effect.void
        })),
      synced: firstSync.await
    } satisfies Informer
  })
