/**
 * logtrain, the node agent: inputs → router → drains, with routes from the configured datasources.
 *
 * With no configuration at all it listens for syslog on TCP 9002 and UDP 9003, serves HTTP on
 * 9000, and routes every hostname to stdout:// through the routes file shipped in
 * config/routes.json — so `npm start` and one `logger` line show it working.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Data, Effect, Exit, Layer, Logger, Redacted, References, Runtime } from "effect"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import * as RoutesFile from "../layers/datasources/RoutesFile.ts"
import * as HttpServer from "../layers/http/HttpServer.ts"
import * as KubeConfigSource from "../layers/kubernetes/KubeConfigSource.ts"
import * as SyslogTcp from "../layers/inputs/SyslogTcp.ts"
import * as SyslogUdp from "../layers/inputs/SyslogUdp.ts"
import * as HttpEvents from "../layers/inputs/HttpEvents.ts"
import * as HttpSyslog from "../layers/inputs/HttpSyslog.ts"
import * as Otlp from "../layers/inputs/Otlp.ts"
import * as MemoryReclaim from "../layers/MemoryReclaim.ts"
import { Checkpoints } from "../layers/storage/Checkpoints.ts"
import * as Tls from "../layers/transports/tls.ts"
import { describeCause } from "../layers/transports/TransportError.ts"
import { LogtrainConfig } from "./LogtrainConfig.ts"
import * as RouterCore from "./RouterCore.ts"
import * as Log from "../layers/Log.ts"

/** The routes file used when no datasource is configured. */
export const EMBEDDED_ROUTES_FILE = fileURLToPath(new URL("../../config/routes.json", import.meta.url))

export class StartupError extends Data.TaggedError("StartupError")<{ readonly detail: string }> {
  override get message(): string {
    return this.detail
  }
}

/** Command-line options; everything else is configured through the environment. */
export interface CommandLine {
  /** A kubeconfig file (else KUBECONFIG, ~/.kube/config, or the in-cluster service account). */
  readonly kubeConfig?: string | undefined
}

export const usage = "usage: logtrain [--kube-config <file>] (everything else is configured through the environment: see the README)"

/** The command line, or a StartupError saying what is wrong with it. */
export const parseCommandLine = (args: ReadonlyArray<string>) =>
  Effect.try({
    try: (): CommandLine | "help" => {
      const { values } = parseArgs({
        args: [...args],
        options: { "kube-config": { type: "string" }, help: { type: "boolean", short: "h" } },
        strict: true,
        allowPositionals: false
      })
      return values.help === true ? "help" : { kubeConfig: values["kube-config"] }
    },
    catch: (error) => new StartupError({ detail: `${(error as Error).message}; ${usage}` })
  })

const MATERIAL_VARIABLES: Record<Tls.MaterialPart | "serverName", string> = {
  cert: "SYSLOG_TLS_CERT_PEM",
  key: "SYSLOG_TLS_KEY_PEM",
  pair: "SYSLOG_TLS_CERT_PEM, SYSLOG_TLS_KEY_PEM",
  ca: "SYSLOG_TLS_CA_PEM",
  serverName: "SYSLOG_TLS_SERVER_NAME"
}

/**
 * The TLS input's key and certificates, checked; a missing or unusable one (unreadable, expired, a
 * key of another certificate, a CA that is not one) stops start-up with one line naming it.
 */
export const serverTls = (config: LogtrainConfig) =>
  Effect.gen(function*() {
    const cert = config.syslogTlsCertPem
    const key = config.syslogTlsKeyPem
    for (const [value, name] of [[cert, "SYSLOG_TLS_CERT_PEM"], [key, "SYSLOG_TLS_KEY_PEM"]] as const) {
      if (value === undefined) {
        return yield* new StartupError({ detail: `SYSLOG_TLS=true needs ${name} (the PEM text itself)` })
      }
    }
    const checked = Tls.checkServerMaterial({
      key: Redacted.value(key!),
      cert: cert!,
      ca: config.syslogTlsCaPem,
      serverName: config.syslogTlsServerName
    })
    if ("error" in checked) {
      return yield* new StartupError({ detail: `${MATERIAL_VARIABLES[checked.error.part]}: ${checked.error.detail}` })
    }
    for (const warning of checked.warnings) yield* Log.warn(`${MATERIAL_VARIABLES[warning.part]}: ${warning.detail}`)
    return { key: key!, cert: cert!, ca: config.syslogTlsCaPem }
  })

/** The whole agent for a configuration; fails when the configuration asks for what it cannot do. */
export const layer = (config: LogtrainConfig, commandLine: CommandLine = {}) =>
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
      return yield* new StartupError({
        detail: "no inputs are enabled: set one of SYSLOG_TCP, SYSLOG_UDP, SYSLOG_TLS, HTTP_SYSLOG, HTTP_EVENTS, OTLP, ENVOY, KUBERNETES to true"
      })
    }
    const host = config.listenAddress
    const tlsMaterial = tls ? yield* serverTls(config) : undefined
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
          partialTimeout: config.kubernetesPartialTimeout
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
      return yield* new StartupError({ detail: "POSTGRES=true needs DATABASE_URL (postgres://user:password@host:5432/db)" })
    }
    const persistent = config.persistent === true
    if (persistent && config.persistentDatabaseUrl === undefined) {
      return yield* new StartupError({ detail: "PERSISTENT=true needs PERSISTENT_DATABASE_URL (postgres://user:password@host:5432/db)" })
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
    const coreOptions = { ingestCapacity: config.ingestBufferSize, drainSettings: config.drains, whenFull: config.drainWhenFull }
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

export const logging = (config: Pick<LogtrainConfig, "logFormat" | "logLevel">) =>
  Layer.mergeAll(
    // Our own logs go to standard error: standard output belongs to the stdout:// drain.
    Logger.layer([
      config.logFormat === "json"
        ? Logger.withConsoleError(Logger.formatJson)
        : config.logFormat === "pretty"
        ? Logger.consolePretty()
        : Logger.withConsoleError(Logger.formatLogFmt)
    ]),
    Layer.succeed(Logger.LogToStderr, true),
    Layer.succeed(References.MinimumLogLevel, config.logLevel)
  )

/**
 * One line for a start-up failure. A configuration error reads `VARIABLE: expected …`, rather than
 * the schema error's two lines.
 */
export const describeStartupError = (error: { readonly _tag: string; readonly message: string }): string => {
  if (error._tag === "ServeError") {
    // The HTTP server could not listen; the error itself says nothing, its cause does.
    const cause = "cause" in error ? error.cause : undefined
    return `HTTP_PORT: cannot serve HTTP: ${cause === undefined ? "unknown error" : describeCause(cause)}`
  }
  if (error._tag !== "ConfigError") return error.message || error._tag
  const text = "cause" in error && error.cause instanceof Error ? error.cause.message : error.message
  const match = /^([\s\S]*?)\n\s*at \[(.*)\]\s*$/.exec(text)
  if (match === null) return text.replace(/\s*\n\s*/g, " ")
  const variable = match[2]!.replace(/"/g, "")
  const problem = match[1]!.replace(/\s*\n\s*/g, " ")
  return `${variable}: ${problem.charAt(0).toLowerCase()}${problem.slice(1)}`
}

/** Reads the configuration and runs until interrupted; any failure to start is one log line. */
export const main = (args: ReadonlyArray<string> = process.argv.slice(2)) =>
  Effect.gen(function*() {
    const commandLine = yield* parseCommandLine(args)
    if (commandLine === "help") return yield* Effect.sync(() => console.log(usage))
    const config = yield* LogtrainConfig
    const app = yield* layer(config, commandLine)
    return yield* Layer.launch(app).pipe(Effect.provide(logging(config)))
  }).pipe(
  Effect.tapError((error) => Log.error(`logtrain cannot start: ${describeStartupError(error)}`)),
  Effect.provide(logging({ logFormat: "logfmt", logLevel: "Info" }))
)

/** SIGTERM and SIGINT interrupt the program; a clean shutdown then exits 0, not 130. */
export const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.hasInterrupts(exit) && !Exit.hasFails(exit) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

let running = false

/**
 * Runs logtrain as the process: SIGTERM/SIGINT shut it down gracefully. Once: the bin script calls
 * it, and so does this module when it is the main one (as in a bundle, where they are one file).
 */
export const run = (): void => {
  if (running) return
  running = true
  NodeRuntime.runMain(main(), { teardown, disableErrorReporting: true })
}

if (import.meta.main) run()
