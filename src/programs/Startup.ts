/**
 * What logtrain and logtail share to start and stop as a process: the command line, the TLS
 * input's material checked, our own logs' format, one line for a start-up failure, and the exit
 * code of a graceful stop. Programs wire layers; this is the part of that wiring they have in common.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Data, Effect, Exit, Layer, Logger, Redacted, References, Runtime } from "effect"
import { parseArgs } from "node:util"
import * as Log from "../layers/Log.ts"
import * as Tls from "../layers/transports/tls.ts"
import { describeCause } from "../layers/transports/TransportError.ts"
import type { LogtrainConfig } from "./LogtrainConfig.ts"

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

/** A program's one-line usage. */
export const usage = (program: string): string =>
  `usage: ${program} [--kube-config <file>] (everything else is configured through the environment: see the README)`

/** The command line, "help", or a StartupError saying what is wrong with it (and the program's usage). */
export const parseCommandLine = (program: string, args: ReadonlyArray<string>) =>
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
    catch: (error) => new StartupError({ detail: `${(error as Error).message}; ${usage(program)}` })
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
export const serverTls = Effect.fn("Startup.serverTls")(function*(config: LogtrainConfig) {
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

/** Our own logs: to standard error (standard output belongs to the stdout:// drain), in the configured format and level. */
export const logging = (config: Pick<LogtrainConfig, "logFormat" | "logLevel">) =>
  Layer.mergeAll(
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
export const describeStartupError = (error: Failure): string => {
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

/** What a start-up failure is described from. */
type Failure = { readonly _tag: string; readonly message: string }

/**
 * A program's main: the command line (`--help` prints the usage), then its layer built from the
 * configuration and launched with the configured logging, until interrupted. Any failure to start
 * is one log line, `<program> cannot start: …`.
 */
export const main = <Built extends Failure, Launched extends Failure>(
  program: string,
  args: ReadonlyArray<string>,
  build: (commandLine: CommandLine) => Effect.Effect<
    { readonly app: Layer.Layer<never, Launched, never>; readonly logging: Pick<LogtrainConfig, "logFormat" | "logLevel"> },
    Built
  >
) =>
  Effect.gen(function*() {
    const commandLine = yield* parseCommandLine(program, args)
    if (commandLine === "help") return yield* Effect.sync(() => console.log(usage(program)))
    const { app, logging: format } = yield* build(commandLine)
    return yield* Layer.launch(app).pipe(Effect.provide(logging(format)))
  }).pipe(
    Effect.tapError((error) => Log.error(`${program} cannot start: ${describeStartupError(error)}`)),
    Effect.provide(logging({ logFormat: "logfmt", logLevel: "Info" }))
  )

/** SIGTERM and SIGINT interrupt the program; a clean shutdown then exits 0, not 130. */
export const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.hasInterrupts(exit) && !Exit.hasFails(exit) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

const running = new Set<string>()

/**
 * Runs a program's main as the process: SIGTERM/SIGINT shut it down gracefully. Once per program:
 * its bin script calls it, and so does the program's module when it is the main one (as in a
 * bundle, where they are one file).
 */
export const run = <E>(program: string, effect: Effect.Effect<void, E, never>): void => {
  if (running.has(program)) return
  running.add(program)
  NodeRuntime.runMain(effect, { teardown, disableErrorReporting: true })
}
