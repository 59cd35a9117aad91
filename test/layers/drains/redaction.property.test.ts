/**
 * Redaction as a property of the running router: for drain URLs of every kind with secrets of any
 * printable characters in user, password, a query value and a path segment, no secret shows in any
 * log line, metric label or error made while the route is read, the drain opened, fails (a
 * receiver refusing with an answer that echoes the request — its Authorization header, its URL —
 * or a connection refused) and is closed. The real RouteTable, Router, Drains and drain kinds run,
 * with a logger that keeps every line and the Prometheus output.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Context, Duration, Effect, Exit, Layer, Logger, Result, Scope } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as fc from "fast-check"
import { Writable } from "node:stream"
import * as DrainUrl from "../../../src/domain/DrainUrl.ts"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import { MemoryDatasource } from "../../../src/layers/datasources/Memory.ts"
import * as DrainSink from "../../../src/layers/drains/DrainSink.ts"
import { Drains } from "../../../src/layers/routing/Drains.ts"
import { StdoutStream } from "../../../src/layers/drains/stdout.ts"
import { Ingest } from "../../../src/layers/routing/Ingest.ts"
import * as RouterCore from "../../../src/layers/routing/RouterCore.ts"
import { certificates } from "../../helpers/certs.ts"
import * as HttpReceiver from "../../helpers/HttpReceiver.ts"
import { freePort } from "../../helpers/ports.ts"
import { findLeak, type SecretUrl, secretUrl } from "../../helpers/SecretUrls.ts"

/**
 * Every scheme logtrain knows, each either answering (HTTP: refused by a receiver that echoes, or
 * not reachable at all) or silent (sockets, which are only refused; drains that send nowhere). A
 * kind added later is taken as answering, over TLS if its URL says https.
 */
/** A generated URL pointed at a local port. */
const place = (generated: SecretUrl, port: number) => generated.url.replace("@HOSTPORT/", `@127.0.0.1:${port}/`)

const kinds = Object.keys(DrainUrl.schemes).map((scheme) => {
  const parsed = DrainUrl.parse(`${scheme}://host:1/`)
  const url = Result.isSuccess(parsed) ? parsed.success : undefined
  const silent = url !== undefined &&
    (url._tag === "Persistent" || url._tag === "Stdout" || (url._tag === "Syslog" && !url.transport.startsWith("http")))
  const target = url === undefined ? "" : "url" in url ? url.url : "bulkUrl" in url ? url.bulkUrl : ""
  return { scheme, silent, tls: target.startsWith("https:") }
})
const schemes = kinds.map((k) => k.scheme)
const kindOf = (scheme: string) => kinds.find((k) => k.scheme === scheme)!

type Failure = "echoing refusal" | "connection refused"

const settings: Partial<DrainSink.DrainSettings> = {
  ...DrainSink.defaultSettings,
  batchTimeout: Duration.zero,
  retryBaseDelay: Duration.millis(20),
  retryMaxDelay: Duration.millis(100),
  flushTimeout: Duration.millis(100)
}

/** Every string a log line carries: its message, annotations and cause, unescaped. */
const stringsOf = (value: unknown, out: Array<string>): void => {
  if (typeof value === "string") out.push(value)
  else if (Array.isArray(value)) for (const v of value) stringsOf(v, out)
  else if (Cause.isCause(value)) out.push(Cause.pretty(value))
  else if (typeof value === "object" && value !== null) for (const v of Object.values(value)) stringsOf(v, out)
  else if (value !== undefined) out.push(String(value))
}

/** The routing core with real drains, a memory datasource, and every log line kept (raw and as logfmt). */
const router = Effect.gen(function*() {
  const logs: Array<string> = []
  const scope = yield* Scope.make()
  const core = RouterCore.layer({ ingestCapacity: 100, drainSettings: settings })
  const logger = Logger.layer([
    Logger.map(Logger.formatStructured, (line) => stringsOf(line, logs)),
    Logger.map(Logger.formatLogFmt, (line) => void logs.push(line))
  ])
  const context = yield* Layer.buildWithScope(
    Layer.provideMerge(MemoryDatasource.layer(), core).pipe(
      Layer.provide(Layer.succeed(StdoutStream, new Writable({ write: (_chunk, _encoding, done) => done() }))),
      Layer.provide(logger)
    ),
    scope
  )
  return {
    logs,
    /** Runs an effect of the test with the same logger: what RouteTable logs while a route is added. */
    logged: <A, E>(effect: Effect.Effect<A, E>) => Effect.provide(effect, logger),
    routes: Context.get(context, MemoryDatasource),
    ingest: Context.get(context, Ingest),
    drains: Context.get(context, Drains),
    close: Scope.close(scope, Exit.void)
  }
})

const waitFor = (condition: () => boolean, ms: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + ms
    while (!condition() && Date.now() < deadline) yield* Effect.sleep("10 millis")
  })

/** Routes `url`, sends a packet through it, lets it fail, closes it: everything it made shown. */
const run = (url: string, echo: HttpReceiver.HttpReceiver | undefined) =>
  Effect.gen(function*() {
    const t = yield* router
    const route = { hostname: "app", endpoint: url }
    yield* t.logged(t.routes.add(route))
    yield* t.ingest.offer([LogPacket.make({ time: new Date(0), hostname: "app", tag: "web", message: "hello" })])
    const attempts = echo?.attempts.length ?? 0
    yield* waitFor(() => {
      const drain = t.drains.get(url)
      if (drain === undefined) return t.logs.some((l) => l.includes("route ignored"))
      const { dropped, errors, sent } = drain.stats
      return (echo === undefined || echo.attempts.length > attempts) &&
        errors + sent + dropped.rejected + dropped.unsupported > 0
    }, 3000)
    const drain = t.drains.get(url)
    const metrics = yield* PrometheusMetrics.format()
    yield* t.logged(t.routes.remove(route))
    yield* waitFor(() => t.drains.get(url) === undefined && (drain === undefined || t.logs.some((l) => l.includes("drain closed"))), 3000)
    yield* t.close
    return { shown: [...t.logs, metrics, drain?.display ?? ""], opened: drain !== undefined }
  })

/** The request, echoed back as receivers that refuse sometimes do: its URL and every header. */
const echoRequest: HttpReceiver.HttpReceiver["answer"] = (request) =>
  [
    `refused ${request.method} ${request.path}`,
    ...request.rawHeaders.map((h, i) => (i % 2 === 0 ? `${h}: ` : `${h}\n`)),
    JSON.stringify({ error: { type: "security_exception", reason: `no: ${request.headers.authorization} at ${request.path}` } })
  ].join("")

describe("redaction through the running router", () => {
  it.live("no secret of any drain URL shows in logs, metric labels or errors, from routing to closing", () =>
    Effect.gen(function*() {
      const certs = certificates()
      const plain = yield* Effect.acquireRelease(Effect.promise(() => HttpReceiver.listen()), (r) => Effect.promise(() => r.stop()))
      const tls = yield* Effect.acquireRelease(
        Effect.promise(() => HttpReceiver.listen({ tls: { cert: certs.serverCert, key: certs.serverKey } })),
        (r) => Effect.promise(() => r.stop())
      )
      for (const receiver of [plain, tls]) receiver.answer = echoRequest
      const closed = yield* Effect.promise(() => freePort())

      const target = (scheme: string, failure: Failure) => {
        if (failure === "connection refused" || kindOf(scheme).silent) return { port: closed, receiver: undefined }
        const receiver = kindOf(scheme).tls ? tls : plain
        return { port: receiver.port, receiver }
      }

      // What the same runs show with other secrets: the words they have of their own.
      const baselines = new Map<string, string>()
      const baseline = (scheme: string, failure: Failure) =>
        Effect.gen(function*() {
          const key = `${scheme} ${failure}`
          const known = baselines.get(key)
          if (known !== undefined) return known
          const { port, receiver } = target(scheme, failure)
          const url = `${scheme}://someuser:somepassword@127.0.0.1:${port}/segmentname/_bulk?token=queryvalue&insecure=true`
          const { shown } = yield* run(url, receiver)
          baselines.set(key, shown.join("\n"))
          return shown.join("\n")
        })

      const cases = fc.tuple(
        secretUrl(schemes, fc.constant("HOSTPORT")),
        fc.constantFrom<Failure>("echoing refusal", "connection refused"),
        fc.constantFrom(401, 400, 503)
      )
      let runs = 0
      let opened = 0
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(cases, async ([generated, failure, status]) => {
            const { port, receiver } = target(generated.scheme, failure)
            if (receiver !== undefined) receiver.status = status
            const known = await Effect.runPromise(baseline(generated.scheme, failure))
            const result = await Effect.runPromise(run(place(generated, port), receiver))
            runs++
            if (result.opened) opened++
            const leak = findLeak(result.shown, generated.secrets, known)
            assert.isUndefined(leak, `${generated.scheme}, ${failure}: ${leak}\n${result.shown.join("\n").slice(0, 3000)}`)
          }),
          { numRuns: 50, ...(process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) }) }
        )
      )
      // Not vacuous: the runs opened drains that reached the echoing receivers.
      assert.isAtLeast(opened, runs / 2)
      assert.isAbove(plain.attempts.length + tls.attempts.length, 5)
    }), 60_000)
})
