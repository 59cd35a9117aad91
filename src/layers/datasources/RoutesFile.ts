/**
 * Routes from JSON: `ROUTES` (inline, read once) or `ROUTES_FILE` (a file, re-read when it changes).
 * This is the embedded default datasource: with no configuration, logtrain reads the routes file
 * shipped in `config/routes.json`.
 *
 * The file is watched (a watch on its directory, which also sees the symlink swap of a Kubernetes
 * ConfigMap) and re-read every `pollInterval` anyway, so a missed event costs seconds, not routes.
 * It must be readable and valid at start; later, an edit that breaks it is reported and ignored —
 * the routes it held stay until the file is valid again — and a file that disappears keeps its
 * routes too, since an editor or a ConfigMap update may be replacing it. Either is warned about
 * once, not at every poll and event, until the file changes (is readable again, or says
 * something else).
 *
 * A hostname may also be given settings (`{"drains": [...], "rate-limit": "500/s"}`): its rate
 * limit is set in RateLimits, one source per hostname (`routes-file:<hostname>`), replaced with
 * the file.
 */
import { Data, Duration, Effect, Layer, Option, Queue, Result } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { RouteChange } from "../../domain/Route.ts"
import * as RoutesJson from "../../domain/RoutesJson.ts"
import { RateLimits } from "../routing/RateLimits.ts"
import { Readiness } from "../Readiness.ts"
import { RouteTable } from "../routing/RouteTable.ts"
import * as Log from "../Log.ts"

export class RoutesFileError extends Data.TaggedError("RoutesFileError")<{
  /** What names the routes: `ROUTES_FILE /path` or `ROUTES`. */
  readonly origin: string
  readonly detail: string
}> {
  override get message(): string {
    return `${this.origin}: ${this.detail}`
  }
}

export interface FileOptions {
  readonly path: string
  readonly pollInterval: Duration.Duration
}

const SOURCE = "routes-file"

const read = (path: string): Effect.Effect<string, RoutesFileError> =>
  Effect.tryPromise({
    try: () => Fs.promises.readFile(path, "utf8"),
    catch: (error) =>
      new RoutesFileError({ origin: `ROUTES_FILE ${path}`, detail: `cannot read: ${(error as Error).message}` })
  })

const decode = (origin: string, text: string) => {
  const parsed = RoutesJson.parseAll(text)
  return Result.isSuccess(parsed)
    ? Effect.succeed(parsed.success)
    : Effect.fail(new RoutesFileError({ origin, detail: parsed.failure }))
}

/** Events from a watch on the file's directory; none (polling only) if the directory cannot be watched. */
const watchDirectory = (path: string) =>
  Effect.gen(function*() {
    const events = yield* Queue.sliding<void>(1)
    const watcher = yield* Effect.acquireRelease(
      Effect.sync(() => {
        try {
          const w = Fs.watch(Path.dirname(path), { persistent: false }, () => Queue.offerUnsafe(events, undefined))
          w.on("error", () => w.close())
          return w
        } catch {
          return undefined
        }
      }),
      (w) => Effect.sync(() => w?.close())
    )
    if (watcher === undefined) {
      yield* Log.warn("cannot watch the routes file's directory; polling only", { path })
    }
    return events
  })

/** Sets the rate limits `file` names, and unsets those it named before and names no more. */
const rateLimitsOf = Effect.gen(function*() {
  const limits = Option.getOrUndefined(yield* Effect.serviceOption(RateLimits))
  let held = new Set<string>()
  return (source: string, file: RoutesJson.RoutesJson) =>
    Effect.gen(function*() {
      if (limits === undefined) return
      const next = new Set<string>()
      for (const { hostname, spec } of file.rateLimits) {
        next.add(hostname)
        yield* limits.set(`${source}:${hostname}`, hostname, spec)
      }
      for (const hostname of held) if (!next.has(hostname)) yield* limits.set(`${source}:${hostname}`, hostname, undefined)
      held = next
    })
})

export const layerFile = (options: FileOptions): Layer.Layer<never, RoutesFileError, RouteTable | Readiness> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const table = yield* RouteTable
    const setLimits = yield* rateLimitsOf
    const check = yield* (yield* Readiness).register(`datasource:${SOURCE}`)
    const origin = `ROUTES_FILE ${options.path}`
    let current = yield* read(options.path)
    const file = yield* decode(origin, current)
    const routes = file.routes
    yield* table.apply(SOURCE, RouteChange.Replace({ routes }))
    yield* setLimits(SOURCE, file)
    yield* check.ready
    yield* Log.info("routes loaded", { file: options.path, routes: routes.length })

    const events = yield* watchDirectory(options.path)
    /** The problem last warned about, while it lasts. */
    let warned: string | undefined
    const reload = Effect.gen(function*() {
      const text = yield* read(options.path)
      // Readable (again): a problem from now on is news.
      warned = undefined
      if (text === current) return
      current = text
      const next = yield* decode(origin, text)
      yield* table.apply(SOURCE, RouteChange.Replace({ routes: next.routes }))
      yield* setLimits(SOURCE, next)
      yield* Log.info("routes reloaded", { file: options.path, routes: next.routes.length })
    }).pipe(
      Effect.catch((error) => {
        if (error.message === warned) return Effect.void
        warned = error.message
        return Log.warn("routes file not applied; keeping the routes it had", { error: error.message })
      })
    )
    yield* Effect.raceFirst(Queue.take(events), Effect.sleep(options.pollInterval)).pipe(
      // Editors write in steps; let them finish before reading.
      Effect.andThen(Effect.sleep(Duration.millis(50))),
      Effect.andThen(reload),
      Effect.forever,
      Effect.forkScoped
    )
  }))

/** Routes given inline in an environment variable; read once. */
export const layerInline = (json: string): Layer.Layer<never, RoutesFileError, RouteTable | Readiness> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const file = yield* decode("ROUTES", json)
    const routes = file.routes
    const check = yield* (yield* Readiness).register("datasource:routes")
    yield* (yield* RouteTable).apply("routes", RouteChange.Replace({ routes }))
    yield* (yield* rateLimitsOf)("routes", file)
    yield* check.ready
    yield* Log.info("routes loaded", { from: "ROUTES", routes: routes.length })
  }))

