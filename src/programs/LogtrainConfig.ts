/**
 * logtrain's configuration, from the environment. Every name the original used keeps its meaning;
 * new ones are documented in the README. Read once at start; a bad value stops start-up with one
 * line naming the variable.
 */
import { Config, Duration, Option } from "effect"
import { atLeast, bytes, duration, flag, httpPath, logLevel, optionalFlag } from "../layers/ConfigValues.ts"
import * as HttpServer from "../layers/http/HttpServer.ts"
import * as MemoryBudget from "../layers/MemoryBudget.ts"
import * as SyslogTcp from "../layers/inputs/SyslogTcp.ts"


const withDefault = <A>(config: Config.Config<A>, value: A) => Config.withDefault(config, value)

const optional = <A>(config: Config.Config<A>) => Config.map(Config.option(config), Option.getOrUndefined)

const optionalString = (name: string) => optional(Config.String(name))

/** `a, b,c` → ["a", "b", "c"]. */
const commaList = (name: string) =>
  Config.map(Config.String(name), (text) => text.split(",").map((item) => item.trim()).filter((item) => item.length > 0))

/** The entries that have a value. */
const definedOnly = <A extends object>(record: A): Partial<{ [K in keyof A]: Exclude<A[K], undefined> }> =>
  Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined)) as never

export const LogtrainConfig = Config.all({
  listenAddress: withDefault(Config.String("LISTEN_ADDRESS"), "0.0.0.0"),
  httpPort: withDefault(Config.Port("HTTP_PORT"), 9000),

  syslogTcp: optionalFlag("SYSLOG_TCP"),
  syslogTcpPort: withDefault(Config.Port("SYSLOG_TCP_PORT"), 9002),
  syslogUdp: optionalFlag("SYSLOG_UDP"),
  syslogUdpPort: withDefault(Config.Port("SYSLOG_UDP_PORT"), 9003),
  maxMessageBytes: withDefault(atLeast("SYSLOG_MAX_MESSAGE_SIZE", 480), 64 * 1024),

  syslogTls: optionalFlag("SYSLOG_TLS"),
  syslogTlsPort: withDefault(Config.Port("SYSLOG_TLS_PORT"), 9004),
  syslogTlsCertPem: optionalString("SYSLOG_TLS_CERT_PEM"),
  syslogTlsKeyPem: optional(Config.Redacted("SYSLOG_TLS_KEY_PEM")),
  syslogTlsCaPem: optionalString("SYSLOG_TLS_CA_PEM"),
  syslogTlsServerName: optionalString("SYSLOG_TLS_SERVER_NAME"),
  // SYSLOG_MAX_CONNECTIONS, SYSLOG_IDLE_TIMEOUT, SYSLOG_FRAME_TIMEOUT, SYSLOG_TLS_HANDSHAKE_TIMEOUT
  syslogLimits: SyslogTcp.limitsConfig,

  httpSyslog: optionalFlag("HTTP_SYSLOG"),
  httpSyslogPath: withDefault(httpPath("HTTP_SYSLOG_PATH"), "/syslog"),
  httpEvents: optionalFlag("HTTP_EVENTS"),
  httpEventsPath: withDefault(httpPath("HTTP_EVENTS_PATH"), "/events"),
  httpMaxBodySize: withDefault(atLeast("HTTP_MAX_BODY_SIZE", 1024), 1024 * 1024),
  // HTTP_MAX_CONNECTIONS, HTTP_HEADERS_TIMEOUT, HTTP_REQUEST_TIMEOUT, HTTP_MAX_BODY_MEMORY
  httpLimits: HttpServer.limitsConfig,
  otlp: optionalFlag("OTLP"),
  // OTLP senders batch thousands of records (a collector 8192): more than HTTP_MAX_BODY_SIZE's 1 MiB.
  otlpMaxBodySize: withDefault(atLeast("OTLP_MAX_BODY_SIZE", 1024), 4 * 1024 * 1024),

  // Envoy/Istio access logs over gRPC (ALS v2 and v3).
  envoy: optionalFlag("ENVOY"),
  envoyPort: withDefault(Config.Port("ENVOY_PORT"), 9001),

  kubernetes: optionalFlag("KUBERNETES"),
  kubernetesLogPath: withDefault(Config.String("KUBERNETES_LOG_PATH"), "/var/log/containers"),
  stateDir: withDefault(Config.String("STATE_DIR"), "/var/lib/logtrain"),
  excludeNamespaces: withDefault(commaList("EXCLUDE_NAMESPACES"), []),
  onlyAkkeris: withDefault(flag("ONLY_AKKERIS"), false),
  kubernetesMaxLineSize: withDefault(atLeast("KUBERNETES_MAX_LINE_SIZE", 1024), 64 * 1024),
  kubernetesPartialTimeout: withDefault(duration("KUBERNETES_PARTIAL_TIMEOUT"), Duration.seconds(5)),
  // Multiline events (logtrain.akkeris.io/multiline): sent when no line joined them for this long, cut beyond this size.
  kubernetesMultilineTimeout: withDefault(duration("KUBERNETES_MULTILINE_TIMEOUT"), Duration.seconds(1)),
  kubernetesMultilineMaxSize: withDefault(atLeast("KUBERNETES_MULTILINE_MAX_SIZE", 1024), 64 * 1024),
  // How far a drain that is down may fall behind a file (bytes) before its oldest lines are skipped.
  kubernetesMaxBacklog: withDefault(atLeast("KUBERNETES_MAX_BACKLOG", 1024 * 1024), 64 * 1024 * 1024),

  kubernetesDatasource: optionalFlag("KUBERNETES_DATASOURCE"),
  akkeris: withDefault(flag("AKKERIS"), false),
  // This node (from the downward API, spec.nodeName): only its pods are followed. NODE is the original's name.
  nodeName: optional(Config.orElse(Config.String("NODE_NAME"), () => Config.String("NODE"))),

  postgres: optionalFlag("POSTGRES"),
  databaseUrl: optional(Config.Redacted("DATABASE_URL")),
  persistent: optionalFlag("PERSISTENT"),
  persistentDatabaseUrl: optional(Config.Redacted("PERSISTENT_DATABASE_URL")),
  persistentPath: withDefault(httpPath("PERSISTENT_PATH"), "/logs/"),

  routes: optionalString("ROUTES"),
  routesFile: optionalString("ROUTES_FILE"),
  routesPollInterval: withDefault(duration("ROUTES_POLL_INTERVAL"), Duration.seconds(5)),

  // The memory budget for buffered log data; by default from the container's limit (MemoryBudget.ts).
  memoryLimit: optional(bytes("MEMORY_LIMIT", MemoryBudget.MIN_LIMIT)),
  ingestBufferSize: withDefault(atLeast("INGEST_BUFFER_SIZE", 1), 1000),
  drainWhenFull: withDefault(Config.Literals(["drop", "block"], "DRAIN_WHEN_FULL"), "drop"),
  // Only what is set: each drain kind has its own defaults for the rest (see DrainRunner).
  drains: Config.all({
    bufferSize: optional(atLeast("DRAIN_BUFFER_SIZE", 1)),
    batchSize: optional(atLeast("DRAIN_BATCH_SIZE", 1)),
    batchBytes: optional(atLeast("DRAIN_BATCH_BYTES", 1024)),
    batchTimeout: optional(duration("DRAIN_BATCH_TIMEOUT")),
    maxWorkers: optional(atLeast("DRAIN_MAX_WORKERS", 1)),
    retryBaseDelay: optional(duration("DRAIN_RETRY_BASE_DELAY")),
    retryMaxDelay: optional(duration("DRAIN_RETRY_MAX_DELAY")),
    flushTimeout: optional(duration("DRAIN_FLUSH_TIMEOUT")),
    stallTimeout: optional(duration("DRAIN_STALL_TIMEOUT"))
  }).pipe(Config.map(definedOnly)),

  logFormat: withDefault(Config.Literals(["logfmt", "json", "pretty"], "LOG_FORMAT"), "logfmt"),
  logLevel: withDefault(logLevel("LOG_LEVEL"), "Info")
})

export type LogtrainConfig = Config.Success<typeof LogtrainConfig>
