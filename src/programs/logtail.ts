/**
 * logtail, the central log service (drop-in for deis/logger, and the original's logtail): syslog
 * inputs → the recent-logs buffer per app (`GET /logs/:app`) and live tails (`POST /tails`).
 *
 * logtrain agents send it logs through an ordinary drain (a `*` route sends every app). While a
 * live tail is open, logtail adds a route `hostname → its own syslog endpoint` to the writable
 * datasource (Postgres or Kubernetes), so every agent forwards that app here.
 *
 * With no configuration it listens for syslog on TCP 9002 and UDP 9003, serves HTTP on 9000 and
 * keeps the last 1000 lines per app in memory.
 */
import { Duration, Effect, Layer, Redacted } from "effect"
import * as DrainSink from "../layers/drains/DrainSink.ts"
import { Drains } from "../layers/routing/Drains.ts"
import type { WritableDatasource } from "../layers/datasources/WritableDatasource.ts"
import * as HttpServer from "../layers/http/HttpServer.ts"
import { Ingest } from "../layers/routing/Ingest.ts"
import * as SyslogTcp from "../layers/inputs/SyslogTcp.ts"
import * as SyslogUdp from "../layers/inputs/SyslogUdp.ts"
import * as Log from "../layers/Log.ts"
import * as Api from "../layers/http/LogtailApi.ts"
import * as Collector from "../layers/tails/Collector.ts"
import * as LiveTails from "../layers/tails/LiveTails.ts"
import * as RecentLogs from "../layers/storage/RecentLogs.ts"
import * as TailFeed from "../layers/tails/TailFeed.ts"
import * as TailRoutes from "../layers/tails/TailRoutes.ts"
import * as TailSessions from "../layers/tails/TailSessions.ts"
import { Readiness } from "../layers/Readiness.ts"
import { RouteTable } from "../layers/routing/RouteTable.ts"
import * as Telemetry from "../layers/Telemetry.ts"
import { LogtailConfig } from "./LogtailConfig.ts"
import { LogtrainConfig } from "./LogtrainConfig.ts"
import * as Startup from "./Startup.ts"

/**
 * The syslog URL agents forward a tailed app to: this logtail's Service (`NAME.NAMESPACE`, or
 * `NAME` alone) on the port of its first syslog input — TLS, else TCP, else UDP. (The original
 * swapped the TCP and TLS ports.) Undefined without NAME.
 */
export const tailsEndpoint = (
  config: Pick<LogtrainConfig, "syslogTlsPort" | "syslogTcpPort" | "syslogUdpPort">,
  inputs: { readonly tls: boolean; readonly tcp: boolean },
  name: string | undefined,
  namespace: string | undefined
): string | undefined => {
  if (name === undefined || name === "") return undefined
  const host = namespace === undefined || namespace === "" ? name : `${name}.${namespace}`
  if (inputs.tls) return `syslog+tls://${host}:${config.syslogTlsPort}`
  if (inputs.tcp) return `syslog+tcp://${host}:${config.syslogTcpPort}`
  return `syslog+udp://${host}:${config.syslogUdpPort}`
}

export const layer = (config: LogtrainConfig, tail: LogtailConfig, commandLine: Startup.CommandLine = {}) =>
  Effect.gen(function*() {
    const nsq = tail.aggregatorType === "nsq"
    if (nsq && (tail.nsqdHost === undefined || tail.nsqdHost === "")) {
      return yield* new Startup.StartupError({ detail: "AGGREGATOR_TYPE=nsq needs DEIS_NSQD_SERVICE_HOST" })
    }
    // As logtrain: the syslog inputs named run; with none named, TCP and UDP — unless logs come from NSQ.
    const named = nsq || [config.syslogTcp, config.syslogUdp, config.syslogTls].some((flag) => flag !== undefined)
    const tcp = named ? config.syslogTcp === true : true
    const udp = named ? config.syslogUdp === true : true
    const tls = config.syslogTls === true
    if (!tcp && !udp && !tls && !nsq) {
      return yield* new Startup.StartupError({ detail: "no inputs are enabled: set one of SYSLOG_TCP, SYSLOG_UDP, SYSLOG_TLS to true, or AGGREGATOR_TYPE=nsq" })
    }
    if (Duration.toMillis(tail.tailLease) < 1000) {
      return yield* new Startup.StartupError({ detail: "LOGTAIL_TAIL_LEASE: expected at least 1s (a replica renews its leases every third of it)" })
    }
    const host = config.listenAddress
    const tlsMaterial = tls ? yield* Startup.serverTls(config) : undefined
    const aggregator = nsq
      ? Layer.unwrap(Effect.map(Effect.promise(() => import("../layers/inputs/NsqConsumer.ts")), (module) =>
        module.layer({
          host: tail.nsqdHost!,
          port: tail.nsqdPort,
          topic: tail.nsqTopic,
          channel: tail.nsqChannel,
          handlerCount: tail.nsqHandlerCount
        })))
      : Layer.empty
    const inputs = Layer.mergeAll(
      aggregator,
      tcp ? SyslogTcp.layer({ host, port: config.syslogTcpPort, maxMessageBytes: config.maxMessageBytes }) : Layer.empty,
      udp ? SyslogUdp.layer({ host, port: config.syslogUdpPort, maxMessageBytes: config.maxMessageBytes }) : Layer.empty,
      tlsMaterial === undefined
        ? Layer.empty
        : SyslogTcp.layer({ host, port: config.syslogTlsPort, maxMessageBytes: config.maxMessageBytes, tls: tlsMaterial })
    )

    // The writable datasource live tails write routes to: Postgres, else Kubernetes, else none.
    const postgres = config.postgres === true
    if (postgres && config.databaseUrl === undefined) {
      return yield* new Startup.StartupError({ detail: "POSTGRES=true needs DATABASE_URL (postgres://user:password@host:5432/db)" })
    }
    const kubernetes = config.kubernetesDatasource === true
    type Failure = { readonly _tag: string; readonly message: string }
    const writable: Layer.Layer<WritableDatasource, Failure, Readiness | RouteTable> | undefined = postgres
      ? Layer.unwrap(Effect.map(
        Effect.promise(() => import("../layers/datasources/Postgres.ts")),
        (module) => module.layer({ url: config.databaseUrl! })
      ))
      : kubernetes
      ? Layer.unwrap(Effect.map(
        Effect.all([
          Effect.promise(() => import("../layers/datasources/Kubernetes.ts")),
          Effect.promise(() => import("../layers/kubernetes/KubeCache.ts"))
        ]),
        ([Datasource, KubeCache]) =>
          Datasource.layer.pipe(
            Layer.provide(KubeCache.layerWithApi({ akkeris: config.akkeris, nodeName: config.nodeName, kubeconfig: commandLine.kubeConfig }))
          )
      ))
      : undefined
    const endpoint = tailsEndpoint(config, { tls, tcp }, tail.name, tail.namespace)

    // The route table the datasource loads into (for the stale routes); nothing is routed through
    // it here, so its drains never open.
    const core = Layer.mergeAll(
      RouteTable.layer.pipe(Layer.provide(Drains.layer), Layer.provide(Layer.succeed(DrainSink.DrainSettings, config.drains))),
      Ingest.layer({ capacity: config.ingestBufferSize }),
      Readiness.layer,
      Telemetry.processMetrics
    )
    // Recent logs and the state of live tails: in this process (one replica), or in Redis, shared
    // by any number of replicas.
    type TailState = TailSessions.TailSessions | TailFeed.TailFeed | TailRoutes.TailRoutes | RecentLogs.RecentLogs
    const inProcess = (storage: Layer.Layer<RecentLogs.RecentLogs, RecentLogs.StorageError>) =>
      Layer.mergeAll(storage, TailSessions.memory(), TailFeed.memory(), TailRoutes.local({ endpoint }))
    const state: Layer.Layer<TailState, RecentLogs.StorageError, Readiness | RouteTable> =
      tail.storageAdapter === "memory"
        ? inProcess(RecentLogs.memory(tail.numberOfLines, { maxApps: tail.storageMemoryMaxApps }))
        : tail.storageAdapter === "file"
        ? inProcess(Layer.unwrap(Effect.map(
          Effect.promise(() => import("../layers/storage/FileRecentLogs.ts")),
          (module) => module.file(tail.storageFileDir, tail.numberOfLines)
        )))
        : Layer.unwrap(Effect.map(Effect.promise(() => import("../layers/redis/layer.ts")), (module) =>
          module.layer({
            url: tail.redisUrl === undefined ? undefined : Redacted.value(tail.redisUrl),
            host: tail.redisHost,
            port: tail.redisPort,
            password: tail.redisPassword === undefined ? undefined : Redacted.value(tail.redisPassword),
            db: tail.redisDb,
            linesPerApp: tail.numberOfLines,
            pipelineLength: tail.redisPipelineLength,
            pipelineTimeout: tail.redisPipelineTimeout,
            prefix: tail.redisPrefix,
            endpoint,
            lease: tail.tailLease
          })))
    const tails = LiveTails.layer().pipe(Layer.provideMerge(writable === undefined ? state : state.pipe(Layer.provide(writable))))
    const http = HttpServer.layer(
      { host, port: config.httpPort },
      Api.routes({ publicBase: tail.hostSuffix === undefined || tail.name === undefined ? undefined : `https://${tail.name}${tail.hostSuffix}` })
    ).pipe(Layer.provide(Api.routerConfig))
    const started = Layer.effectDiscard(Effect.gen(function*() {
      if (writable === undefined) {
        yield* Log.warn("no writable datasource (POSTGRES or KUBERNETES_DATASOURCE): live tails show only what agents already send here")
      } else if (endpoint === undefined) {
        yield* Log.warn("NAME is not set: live tails cannot tell agents where to send, and show only what they already send here")
      }
      yield* Log.info("logtail started", {
        inputs: [nsq ? `nsq ${tail.nsqdHost}:${tail.nsqdPort}/${tail.nsqTopic}` : "", tcp ? `syslog+tcp :${config.syslogTcpPort}` : "", udp ? `syslog+udp :${config.syslogUdpPort}` : "", tls ? `syslog+tls :${config.syslogTlsPort}` : ""]
          .filter((s) => s !== "").join(", "),
        http: `:${config.httpPort}`,
        storage: tail.storageAdapter,
        linesPerApp: tail.numberOfLines,
        ...(endpoint === undefined ? {} : { tailsEndpoint: endpoint })
      })
    }))
    return started.pipe(
      Layer.provideMerge(Layer.mergeAll(inputs, http)),
      Layer.provideMerge(Collector.layer()),
      Layer.provideMerge(tails),
      Layer.provide(core)
    )
  })

/** Reads the configuration and runs until interrupted; any failure to start is one log line. */
export const main = (args: ReadonlyArray<string> = process.argv.slice(2)) =>
  Startup.main("logtail", args, (commandLine) =>
    Effect.gen(function*() {
      const config = yield* LogtrainConfig
      const tail = yield* LogtailConfig
      return { app: yield* layer(config, tail, commandLine), logging: config }
    }))

/** Runs logtail as the process, once (see Startup.run). */
export const run = (): void => Startup.run("logtail", main())

if (import.meta.main) run()
