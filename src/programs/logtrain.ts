/**
 * logtrain, the node agent: inputs → router → drains, with routes from the configured datasources.
 *
 * With no configuration at all it listens for syslog on TCP 9002 and UDP 9003, serves HTTP on
 * 9000, and routes every hostname to stdout:// through the routes file shipped in
 * config/routes.json — so `npm start` and one `logger` line show it working.
 */
import { Effect, Layer } from "effect"
import { fileURLToPath } from "node:url"
import * as RoutesFile from "../layers/datasources/RoutesFile.ts"
import * as HttpServer from "../layers/http/HttpServer.ts"
import * as KubeConfigSource from "../layers/kubernetes/KubeConfigSource.ts"
import * as SyslogTcp from "../layers/inputs/SyslogTcp.ts"
import * as SyslogUdp from "../layers/inputs/SyslogUdp.ts"
import * as HttpEvents from "../layers/inputs/HttpEvents.ts"
import * as HttpSyslog from "../layers/inputs/HttpSyslog.ts"
import * as Otlp from "../layers/inputs/Otlp.ts"
import * as MemoryBudget from "../layers/MemoryBudget.ts"
import * as MemoryReclaim from "../layers/MemoryReclaim.ts"
import * as RateLimits from "../layers/routing/RateLimits.ts"
import { Checkpoints } from "../layers/storage/Checkpoints.ts"
import { LogtrainConfig } from "./LogtrainConfig.ts"
import * as RouterCore from "../layers/routing/RouterCore.ts"
import * as Startup from "./Startup.ts"
import * as Log from "../layers/Log.ts"

/** The routes file used when no datasource is configured. */
export const EMBEDDED_ROUTES_FILE = fileURLToPath(new URL("../../config/routes.json", import.meta.url))

/** The whole agent for a configuration; fails when the configuration asks for what it cannot do. */
export const layer = (config: LogtrainConfig, commandLine: Startup.CommandLine = {}) =>
  Effect.gen(function*() {
    // As the original, only the inputs asked for run; with none named at all, the embedded default
    // (syslog over TCP and UDP) runs.
    const named = [config.syslogTcp, config.syslogUdp, config.syslogTls, config.httpSyslog, config.httpEvents, config.otlp, config.envoy, config.kubernetes]
      .some((flag) => flag !== undefined)
    const tcp = named ? config.syslogTcp === true : true
    const udp = named ? config.syslogUdp === true : true
    const tls = config.syslogTls === true
    const httpSyslog = config.httpSyslog === true
    const httpEvents = config.httpEvents === true
    const otlp = config.otlp === true
    const containerLogs = config.kubernetes === true
    const envoy = config.envoy === true
    if (!tcp && !udp && !tls && !httpSyslog && !httpEvents && !otlp && !containerLogs && !envoy) {
      return yield* new Startup.StartupError({
        detail: "no inputs are enabled: set one of SYSLOG_TCP, SYSLOG_UDP, SYSLOG_TLS, HTTP_SYSLOG, HTTP_EVENTS, OTLP, ENVOY, KUBERNETES to true"
      })
    }
    const host = config.listenAddress
    const tlsMaterial = tls ? yield* Startup.serverTls(config) : undefined
    // Kubernetes code (and @kubernetes/client-node) is loaded only when a Kubernetes feature is on;
    // one cache serves the datasource and the container log input.
    const kubernetesDatasource = config.kubernetesDatasource === true
    const kubernetes = Layer.unwrap(Effect.map(
      Effect.promise(() => import("../layers/kubernetes/KubeCache.ts")),
      (module) => module.layerWithApi({ akkeris: config.akkeris, nodeName: config.nodeName, kubeconfig: commandLine.kubeConfig })
    ))
    const containerInput = Layer.unwrap(Effect.map(
      Effect.all([
        Effect.promise(() => import("../layers/inputs/containers/ContainerLogs.ts")),
        Effect.promise(() => import("../layers/kubernetes/PodMetadata.ts"))
      ]),
      ([ContainerLogs, PodMetadata]) => {
        // Without a Kubernetes API (and no datasource needing one), logs are named from their file
        // names, and the client library is not even loaded.
        const metadata = kubernetesDatasource || KubeConfigSource.find(commandLine.kubeConfig) !== undefined
          ? Layer.unwrap(Effect.map(Effect.promise(() => import("../layers/kubernetes/KubeCache.ts")), (module) => module.podMetadata))
            .pipe(Layer.provide(kubernetes))
          : Layer.unwrap(Effect.as(
            Log.warn(`no Kubernetes API (${KubeConfigSource.noCluster}): container logs are named from their file names`),
            PodMetadata.fromNames(config.akkeris)
          ))
        return ContainerLogs.layer({
          path: config.kubernetesLogPath,
          maxBacklogBytes: config.kubernetesMaxBacklog,
          excludeNamespaces: config.excludeNamespaces,
          onlyAkkeris: config.onlyAkkeris,
          maxLineBytes: config.kubernetesMaxLineSize,
          partialTimeout: config.kubernetesPartialTimeout,
          multilineTimeout: config.kubernetesMultilineTimeout,
          multilineMaxBytes: config.kubernetesMultilineMaxSize
        }).pipe(Layer.provide(metadata))
      }
    ))
    // gRPC is loaded only when the Envoy input is on.
    const envoyInput = Layer.unwrap(Effect.map(
      Effect.promise(() => import("../layers/inputs/envoy/EnvoyAls.ts")),
      (module) => module.layer({ host, port: config.envoyPort, akkeris: config.akkeris })
    ))
    const inputs = Layer.mergeAll(
      containerLogs ? containerInput : Layer.empty,
      envoy ? envoyInput : Layer.empty,
      tcp
        ? SyslogTcp.layer({ host, port: config.syslogTcpPort, maxMessageBytes: config.maxMessageBytes, limits: config.syslogLimits })
        : Layer.empty,
      udp ? SyslogUdp.layer({ host, port: config.syslogUdpPort, maxMessageBytes: config.maxMessageBytes }) : Layer.empty,
      tlsMaterial === undefined
        ? Layer.empty
        : SyslogTcp.layer({
          host,
          port: config.syslogTlsPort,
          maxMessageBytes: config.maxMessageBytes,
          tls: tlsMaterial,
          limits: config.syslogLimits
        })
    )
    const httpRoutes = Layer.mergeAll(
      RateLimits.routes,
      httpSyslog
        ? HttpSyslog.routes({ path: config.httpSyslogPath, maxBodyBytes: config.httpMaxBodySize, maxMessageBytes: config.maxMessageBytes })
        : Layer.empty,
      httpEvents ? HttpEvents.routes({ path: config.httpEventsPath, maxBodyBytes: config.httpMaxBodySize }) : Layer.empty,
      otlp
        ? Otlp.routes({
          path: Otlp.PATH,
          maxBodyBytes: config.otlpMaxBodySize,
          maxMessageBytes: config.maxMessageBytes,
          akkeris: config.akkeris
        })
        : Layer.empty
    )

    // Postgres code is loaded only when a Postgres feature is on.
    const postgres = config.postgres === true
    if (postgres && config.databaseUrl === undefined) {
      return yield* new Startup.StartupError({ detail: "POSTGRES=true needs DATABASE_URL (postgres://user:password@host:5432/db)" })
    }
    const persistent = config.persistent === true
    if (persistent && config.persistentDatabaseUrl === undefined) {
      return yield* new Startup.StartupError({ detail: "PERSISTENT=true needs PERSISTENT_DATABASE_URL (postgres://user:password@host:5432/db)" })
    }

    const datasourceNamed = config.routes !== undefined || config.routesFile !== undefined || postgres || kubernetesDatasource
    const routesFile = config.routesFile ?? (datasourceNamed ? undefined : EMBEDDED_ROUTES_FILE)
    const datasources = Layer.mergeAll(
      config.routes === undefined ? Layer.empty : RoutesFile.layerInline(config.routes),
      routesFile === undefined
        ? Layer.empty
        : RoutesFile.layerFile({ path: routesFile, pollInterval: config.routesPollInterval }),
      postgres
        ? Layer.unwrap(Effect.map(
          Effect.promise(() => import("../layers/datasources/Postgres.ts")),
          (module) => module.layer({ url: config.databaseUrl! })
        ))
        : Layer.empty,
      kubernetesDatasource
        ? Layer.unwrap(Effect.map(
          Effect.promise(() => import("../layers/datasources/Kubernetes.ts")),
          (module) => module.layer
        )).pipe(Layer.provide(kubernetes))
        : Layer.empty
    )
    // One layer value for both users, so they share one store (a build makes each layer once).
    const persistentStore = Layer.unwrap(Effect.map(
      Effect.promise(() => import("../layers/storage/PersistentLogs.ts")),
      (module) => module.layer({ url: config.persistentDatabaseUrl! })
    ))
    const http = persistent
      ? HttpServer.layer(
        { host, port: config.httpPort, limits: config.httpLimits },
        Layer.mergeAll(
          httpRoutes,
          Layer.unwrap(Effect.map(
            Effect.promise(() => import("../layers/http/PersistentRoutes.ts")),
            (module) => module.routes(config.persistentPath)
          ))
        )
      ).pipe(Layer.provide(persistentStore))
      : HttpServer.layer({ host, port: config.httpPort, limits: config.httpLimits }, httpRoutes)
    const budget = MemoryBudget.make(config.memoryLimit ?? MemoryBudget.defaultLimit(MemoryBudget.cgroupLimit()), {
      httpBodies: httpSyslog || httpEvents || otlp ? config.httpLimits.maxBodyMemory : 0
    })
    const coreOptions = {
      ingestCapacity: config.ingestBufferSize,
      drainSettings: config.drains,
      whenFull: config.drainWhenFull,
      budget
    }
    const routerCore = persistent ? RouterCore.layer(coreOptions, persistentStore) : RouterCore.layer(coreOptions)
    // Built before the core, so released after it: the last checkpoint is saved once the drains
    // have flushed, and says what they delivered.
    // (Without the container log input nothing asks for the store: none is made.)
    const core = routerCore.pipe(Layer.provideMerge(
      containerLogs ? Checkpoints.layer(config.stateDir) : (Layer.empty as unknown as Layer.Layer<Checkpoints>)
    ))

    const started = Layer.effectDiscard(Log.info("logtrain started", {
      inputs: [
        containerLogs ? `container logs ${config.kubernetesLogPath}` : "",
        envoy ? `envoy access logs :${config.envoyPort}` : "",
        tcp ? `syslog+tcp :${config.syslogTcpPort}` : "",
        udp ? `syslog+udp :${config.syslogUdpPort}` : "",
        tls ? `syslog+tls :${config.syslogTlsPort}` : "",
        httpSyslog ? `syslog over http ${config.httpSyslogPath}` : "",
        httpEvents ? `events over http ${config.httpEventsPath}` : "",
        otlp ? `otlp over http ${Otlp.PATH}` : ""
      ].filter((s) => s !== "").join(", "),
      http: `:${config.httpPort}`,
      memoryLimit: `${(budget.limit / 1048576).toFixed(1)} MiB (drains ${(budget.drains.bytes / 1048576).toFixed(1)}, ingest ${
        (budget.ingest / 1048576).toFixed(1)
      }${budget.httpBodies > 0 ? `, http bodies ${(budget.httpBodies / 1048576).toFixed(1)}` : ""})`,
      routes: [
        config.routes === undefined ? "" : "ROUTES",
        routesFile === undefined ? "" : routesFile,
        postgres ? "postgres" : "",
        kubernetesDatasource ? "kubernetes" : ""
      ]
        .filter((s) => s !== "").join(", ") + (routesFile === EMBEDDED_ROUTES_FILE ? " (embedded default)" : ""),
      ...(persistent ? { persistent: config.persistentPath } : {})
    }))

    // "started" once everything is up (a datasource that cannot start stops start-up first).
    return Layer.mergeAll(started, RouterCore.stopping).pipe(
      Layer.provideMerge(Layer.mergeAll(inputs, datasources, http, MemoryReclaim.layer())),
      Layer.provide(core)
    )
  })

/** Reads the configuration and runs until interrupted; any failure to start is one log line. */
export const main = (args: ReadonlyArray<string> = process.argv.slice(2)) =>
  Startup.main("logtrain", args, (commandLine) =>
    Effect.gen(function*() {
      const config = yield* LogtrainConfig
      return { app: yield* layer(config, commandLine), logging: config }
    }))

/**
 * Runs logtrain as the process: SIGTERM/SIGINT shut it down gracefully. Once: the bin script calls
 * it, and so does this module when it is the main one (as in a bundle, where they are one file).
 */
export const run = (): void => Startup.run("logtrain", main())

if (import.meta.main) run()
