/**
 * Config values as operators write them. The originals were Go programs, so durations are read in
 * Go's form (`500ms`, `5s`, `1m30s`) as well as Effect's (`5 seconds`), and flags in any case
 * (`true`, `TRUE`, `yes`, `1`), and sizes as Kubernetes writes them (`128Mi`, `64M`) or in bytes.
 * A bad value stops start-up with one line naming the variable.
 */
import { Config, Duration, Effect, Option, Schema, SchemaIssue, SchemaTransformation } from "effect"
import { parseBytes } from "./MemoryLimit.ts"

const TRUE = new Set(["true", "yes", "y", "on", "1"])
const FALSE = new Set(["false", "no", "n", "off", "0"])

const FlagFromString = Schema.String.pipe(
  Schema.decodeTo(
    Schema.Boolean,
    SchemaTransformation.transformEffect({
      decode: (s, options) => {
        const value = s.trim().toLowerCase()
        if (TRUE.has(value)) return Effect.succeed(true)
        if (FALSE.has(value)) return Effect.succeed(false)
        return Effect.fail(new SchemaIssue.InvalidValue({ expected: "true or false" }, s, options))
      },
      encode: (b) => Effect.succeed(String(b))
    })
  )
)

const GO_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const GO_DURATION = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/
const GO_PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g

/** A Go duration (`1m30s`) or an Effect one (`90 seconds`); undefined if neither. */
export const parseDuration = (text: string): Duration.Duration | undefined => {
  const s = text.trim()
  if (GO_DURATION.test(s)) {
    let millis = 0
    for (const [, amount, unit] of s.matchAll(GO_PART)) millis += Number(amount) * GO_UNITS[unit!]!
    return Duration.millis(millis)
  }
  return Option.getOrUndefined(Duration.fromInput(s as Duration.Input))
}

const DurationFromString = Schema.String.pipe(
  Schema.decodeTo(
    Schema.Duration,
    SchemaTransformation.transformEffect({
      decode: (s, options) => {
        const duration = parseDuration(s)
        return duration === undefined
          ? Effect.fail(new SchemaIssue.InvalidValue({ expected: "a duration such as 500ms, 5s or 1m" }, s, options))
          : Effect.succeed(duration)
      },
      encode: (d) => Effect.succeed(`${Duration.toMillis(d)}ms`)
    })
  )
)

/** A true/false variable. */
export const flag = (name: string): Config.Config<boolean> => Config.schema(FlagFromString, name)

/** A true/false variable that may be unset (to tell "not set" from "set to false"). */
export const optionalFlag = (name: string): Config.Config<boolean | undefined> =>
  Config.map(Config.option(flag(name)), Option.getOrUndefined)

export const duration = (name: string): Config.Config<Duration.Duration> => Config.schema(DurationFromString, name)

const LOG_LEVELS = ["All", "Trace", "Debug", "Info", "Warn", "Error", "Fatal", "None"] as const
export type LogLevelName = typeof LOG_LEVELS[number]

const LogLevelFromString = Schema.String.pipe(
  Schema.decodeTo(
    Schema.Literals(LOG_LEVELS),
    SchemaTransformation.transformEffect({
      decode: (s, options) => {
        const wanted = s.trim().toLowerCase()
        const level = LOG_LEVELS.find((l) => l.toLowerCase() === wanted) ?? (wanted === "warning" ? "Warn" : undefined)
        return level === undefined
          ? Effect.fail(new SchemaIssue.InvalidValue({ expected: LOG_LEVELS.join(", ").toLowerCase() }, s, options))
          : Effect.succeed(level)
      },
      encode: (level) => Effect.succeed(level)
    })
  )
)

/** A log level in any case: `debug`, `Debug`, `DEBUG`. */
export const logLevel = (name: string): Config.Config<LogLevelName> => Config.schema(LogLevelFromString, name)

/** A whole number no smaller than `min`. */
export const atLeast = (name: string, min: number): Config.Config<number> =>
  Config.schema(Schema.Int.check(Schema.isGreaterThanOrEqualTo(min)), name)

/** An HTTP path: starts with `/`. */
export const httpPath = (name: string): Config.Config<`/${string}`> =>
  Config.schema(
    Schema.String.check(Schema.isPattern(/^\/\S*$/, { expected: "a path starting with /" })),
    name
  ) as Config.Config<`/${string}`>

const BytesFromString = Schema.String.pipe(
  Schema.decodeTo(
    Schema.Number,
    SchemaTransformation.transformEffect({
      decode: (s, options) => {
        const bytes = parseBytes(s)
        return bytes === undefined
          ? Effect.fail(new SchemaIssue.InvalidValue({ expected: "a size such as 134217728, 128Mi or 64M" }, s, options))
          : Effect.succeed(bytes)
      },
      encode: (n) => Effect.succeed(String(n))
    })
  )
)

export { parseBytes }

/** A size in bytes (see `parseBytes`), no smaller than `min`. */
export const bytes = (name: string, min: number): Config.Config<number> =>
  Config.schema(BytesFromString.check(Schema.isGreaterThanOrEqualTo(min)), name)
