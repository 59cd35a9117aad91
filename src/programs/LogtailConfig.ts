/**
 * What logtail reads besides logtrain's variables (inputs, HTTP, datasources, logging): deis/logger's
 * buffer settings and the original logtail's tail settings.
 */
import { Config, Duration, Option } from "effect"
import { atLeast, duration } from "../layers/ConfigValues.ts"

const optional = <A>(config: Config.Config<A>) => Config.map(Config.option(config), Option.getOrUndefined)

export const LogtailConfig = Config.all({
  numberOfLines: Config.withDefault(atLeast("NUMBER_OF_LINES", 1), 1000),
  storageAdapter: Config.withDefault(Config.Literals(["memory", "redis", "file"], "STORAGE_ADAPTER"), "memory"),
  storageFileDir: Config.withDefault(Config.String("STORAGE_FILE_DIR"), "/data/logs"),
  storageMemoryMaxApps: Config.withDefault(atLeast("STORAGE_MEMORY_MAX_APPS", 1), 10_000),
  redisUrl: optional(Config.Redacted("REDIS_URL")),
  redisHost: Config.withDefault(Config.String("DEIS_LOGGER_REDIS_SERVICE_HOST"), "127.0.0.1"),
  redisPort: Config.withDefault(Config.Port("DEIS_LOGGER_REDIS_SERVICE_PORT"), 6379),
  redisPassword: optional(Config.Redacted("DEIS_LOGGER_REDIS_PASSWORD")),
  redisDb: Config.withDefault(atLeast("DEIS_LOGGER_REDIS_DB", 0), 0),
  redisPipelineLength: Config.withDefault(atLeast("DEIS_LOGGER_REDIS_PIPELINE_LENGTH", 1), 50),
  redisPipelineTimeout: Config.withDefault(
    Config.map(atLeast("DEIS_LOGGER_REDIS_PIPELINE_TIMEOUT_SECONDS", 0), (s) => Duration.seconds(s)),
    Duration.seconds(1)
  ),
  // Tail state in Redis (several replicas): the prefix of its keys, and how long a tail's lease lasts.
  redisPrefix: optional(Config.String("LOGTAIL_REDIS_PREFIX")),
  tailLease: Config.withDefault(duration("LOGTAIL_TAIL_LEASE"), Duration.seconds(15)),
  aggregatorType: optional(Config.Literals(["nsq"], "AGGREGATOR_TYPE")),
  nsqdHost: optional(Config.String("DEIS_NSQD_SERVICE_HOST")),
  nsqdPort: Config.withDefault(Config.Port("DEIS_NSQD_SERVICE_PORT_TRANSPORT"), 4150),
  nsqTopic: Config.withDefault(Config.String("NSQ_TOPIC"), "logs"),
  nsqChannel: Config.withDefault(Config.String("NSQ_CHANNEL"), "consume"),
  nsqHandlerCount: Config.withDefault(atLeast("NSQ_HANDLER_COUNT", 1), 30),
  // This logtail's Service, for the syslog endpoint agents forward tailed apps to: NAME.NAMESPACE.
  name: optional(Config.String("NAME")),
  namespace: optional(Config.String("NAMESPACE")),
  hostSuffix: optional(Config.String("LOGTAIL_HOST_SUFFIX"))
})

export type LogtailConfig = Config.Success<typeof LogtailConfig>
