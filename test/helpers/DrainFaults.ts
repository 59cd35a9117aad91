/**
 * logtrain (the built bundle) relaying its syslog TCP input to one syslog+tcp drain, and what its
 * metrics say of that drain: the setting of the drain fault tests (test/faults/).
 */
import { assert } from "@effect/vitest"
import type { Bundle } from "./Bundle.ts"
import type { Report } from "./Delivery.ts"
import { metric } from "./LogtailClient.ts"
import * as LogtrainProcess from "./LogtrainProcess.ts"
import { freePorts } from "./ports.ts"

export interface Relay {
  readonly process: LogtrainProcess.LogtrainProcess
  /** logtrain's syslog TCP input. */
  readonly input: number
  /** The drain's counters, read from /metrics now. */
  readonly stats: () => Promise<DrainCounters>
  /** Stops logtrain (SIGTERM) and says how it exited, with its warnings if not 0. */
  readonly stop: () => Promise<{ readonly code: number | null; readonly warnings: string }>
}

export interface DrainCounters {
  readonly sent: number
  readonly resent: number
  readonly retries: number
  readonly errors: number
  readonly dropped: number
  readonly workers: number
}

/** With FAULTS_VERBOSE set, prints a test's numbers even when it passes (for before/after notes). */
export const show = (test: string, numbers: string): void => {
  if (process.env.FAULTS_VERBOSE !== undefined) console.log(`[${test}]\n${numbers}`)
}

/** The lines of logtrain's log at WARN or above, for assertion messages. */
export const warnings = (stderr: string): string =>
  stderr.split("\n").filter((l) => !l.includes("level=INFO") && !l.includes("level=DEBUG") && l !== "").slice(-20).join("\n")

/** Starts logtrain with every hostname routed to `drain` (a drain URL), and waits until it is ready. */
export const start = async (bundle: Pick<Bundle, "script">, drain: string, env: Record<string, string> = {}): Promise<Relay> => {
  const [http, input] = await freePorts(2)
  const process = LogtrainProcess.startScript(bundle.script("logtrain"), {
    HTTP_PORT: String(http),
    SYSLOG_TCP: "true",
    SYSLOG_TCP_PORT: String(input),
    ROUTES: JSON.stringify({ "*": [drain] }),
    ...env
  })
  await LogtrainProcess.ready(process)
  const read = (name: string) => metric(http!, name)
  return {
    process,
    input: input!,
    stats: async () => ({
      sent: await read("logtrain_drain_sent_total"),
      resent: await read("logtrain_drain_resent_total"),
      retries: await read("logtrain_drain_retries_total"),
      errors: await read("logtrain_drain_errors_total"),
      dropped: await read("logtrain_drain_dropped_total"),
      workers: await read("logtrain_drain_workers")
    }),
    stop: async () => {
      const code = await process.stop()
      return { code, warnings: warnings(process.stderr()) }
    }
  }
}

/**
 * Every line arrived, in order, whole; a line arrived twice only if logtrain wrote it again (and
 * counts it as resent); none dropped.
 */
export const assertEveryLine = (report: Report, stats: DrainCounters, numbers: string): void => {
  assert.strictEqual(report.lost, 0, numbers)
  assertInOrder(report, stats, numbers)
  assert.strictEqual(stats.dropped, 0, numbers)
}

/** What arrived arrived in order, whole; a line arrived twice only if logtrain wrote it again (and counts it as resent). */
export const assertInOrder = (report: Report, stats: DrainCounters, numbers: string): void => {
  assert.strictEqual(report.reordered, 0, numbers)
  assert.strictEqual(report.cut, 0, numbers)
  assert.isAtMost(report.duplicates, stats.resent, numbers)
}

/** Stops logtrain, then the receiver (`stopReceiver`); logtrain must have exited 0. */
export const stopBoth = async (relay: Relay, stopReceiver: () => Promise<unknown>): Promise<void> => {
  const stopped = await relay.stop()
  await stopReceiver()
  assert.strictEqual(stopped.code, 0, stopped.warnings)
}
