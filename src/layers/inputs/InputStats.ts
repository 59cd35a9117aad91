/**
 * What every input counts, and how it reports bad input: counters in plain numbers (read by
 * /metrics at scrape time), and at most one warning per interval summing up the malformed lines,
 * truncations, drops and limits that bit since the last one, with the latest example — so a
 * sender spewing garbage (or a flood of connections) costs a line of log every few seconds, not
 * one per line.
 */
import { Duration, Effect, Schedule, Scope } from "effect"
import type { LogPacket } from "../../domain/LogPacket.ts"
import * as Syslog from "../../domain/syslog/Syslog.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Log from "../Log.ts"

export interface InputStats {
  readonly input: string
  records: number
  bytes: number
  /** Lines that are not syslog. */
  malformed: number
  /** Messages cut to the size limit. */
  truncated: number
  /** Packets whose time (outside years 0000–9999) was replaced by the time they were received. */
  timeReplaced: number
  /** Packets lost because logtrain could not take them (UDP only: TCP waits instead). */
  dropped: number
  /** TLS clients refused at the handshake (untrusted or missing certificate, not TLS). */
  handshakeFailures: number
  lastHandshakeFailure: string | undefined
  connections: number
  /** Connections or requests refused or cut because a limit bit, by the limit's name. */
  readonly limited: Record<string, number>
  /** The latest malformed line, as an example for the report. */
  lastMalformed: { readonly message: string } | undefined
}

const REPORT_INTERVAL = Duration.seconds(10)

/**
 * Counters for one input, registered as metrics and reported on for as long as the scope lives.
 * `limits` names the limits the input has (each a `reason` of `logtrain_input_limited_total`,
 * shown at 0 until it bites); `connections`, when given, is what `logtrain_input_connections`
 * reads instead of the `connections` field (for a server that counts its connections itself).
 */
export const make = (
  input: string,
  limits: ReadonlyArray<string> = [],
  connections?: () => number
): Effect.Effect<InputStats, never, Scope.Scope> =>
  Effect.gen(function*() {
    const stats: InputStats = {
      input,
      records: 0,
      bytes: 0,
      malformed: 0,
      truncated: 0,
      timeReplaced: 0,
      dropped: 0,
      handshakeFailures: 0,
      lastHandshakeFailure: undefined,
      connections: 0,
      limited: Object.fromEntries(limits.map((reason) => [reason, 0])),
      lastMalformed: undefined
    }
    const labels = { input }
    yield* Effect.all([
      Telemetry.counter("logtrain_input_records_total", "Packets received.", labels, () => stats.records),
      Telemetry.counter("logtrain_input_bytes_total", "Bytes received.", labels, () => stats.bytes),
      Telemetry.counter("logtrain_input_errors_total", "Lines that could not be read as syslog, or were cut.", {
        ...labels,
        reason: "malformed"
      }, () => stats.malformed),
      Telemetry.counter("logtrain_input_errors_total", "Lines that could not be read as syslog, or were cut.", {
        ...labels,
        reason: "truncated"
      }, () => stats.truncated),
      Telemetry.counter("logtrain_input_errors_total", "Lines that could not be read as syslog, or were cut.", {
        ...labels,
        reason: "tls_handshake"
      }, () => stats.handshakeFailures),
      Telemetry.counter("logtrain_input_errors_total", "Lines that could not be read as syslog, or were cut.", {
        ...labels,
        reason: "time_out_of_range"
      }, () => stats.timeReplaced),
      Telemetry.counter("logtrain_input_dropped_total", "Packets lost because logtrain could not take them.", labels, () =>
        stats.dropped),
      Telemetry.gauge("logtrain_input_connections", "Open connections.", labels, connections ?? (() => stats.connections)),
      ...limits.map((reason) =>
        Telemetry.counter(
          "logtrain_input_limited_total",
          "Connections or requests refused or closed because a limit bit.",
          { ...labels, reason },
          () => stats.limited[reason] ?? 0
        )
      )
    ], { discard: true })

    let seen = { malformed: 0, truncated: 0, dropped: 0, handshakeFailures: 0 }
    let seenLimited: Record<string, number> = { ...stats.limited }
    yield* Effect.suspend(() => {
      const now = {
        malformed: stats.malformed,
        truncated: stats.truncated,
        dropped: stats.dropped,
        handshakeFailures: stats.handshakeFailures
      }
      const delta = {
        malformed: now.malformed - seen.malformed,
        truncated: now.truncated - seen.truncated,
        dropped: now.dropped - seen.dropped,
        handshakeFailures: now.handshakeFailures - seen.handshakeFailures
      }
      seen = now
      const limited = Object.entries(stats.limited)
        .filter(([reason, n]) => n > (seenLimited[reason] ?? 0))
        .map(([reason, n]) => `${reason}=${n - (seenLimited[reason] ?? 0)}`)
      seenLimited = { ...stats.limited }
      if (delta.malformed + delta.truncated + delta.dropped + delta.handshakeFailures === 0 && limited.length === 0) {
        return Effect.void
      }
      return Log.warn("input had bad or lost lines, or limits that bit", {
        input,
        ...delta,
        ...(limited.length > 0 ? { limited: limited.join(" ") } : {}),
        ...(delta.malformed > 0 && stats.lastMalformed !== undefined ? { example: stats.lastMalformed.message } : {}),
        ...(delta.handshakeFailures > 0 ? { handshake: stats.lastHandshakeFailure } : {})
      })
    }).pipe(Effect.repeat(Schedule.spaced(REPORT_INTERVAL)), Effect.forkScoped)
    return stats
  })

/**
 * Parses syslog lines onto the end of `out`, counting the records added and the malformed lines. `fallbackHostname` is
 * used for RFC 3164 lines that carry none (the sender's address).
 */
export const parseLines = (
  lines: ReadonlyArray<string>,
  receivedAt: Date,
  fallbackHostname: string,
  stats: InputStats,
  out: Array<LogPacket>
): void => {
  const before = out.length
  for (let i = 0; i < lines.length; i++) {
    const result = Syslog.parse(lines[i]!, receivedAt, fallbackHostname)
    if (Syslog.isParseError(result)) {
      stats.malformed++
      stats.lastMalformed = result
    } else {
      out.push(result)
    }
  }
  stats.records += out.length - before
}

/**
 * `parseLines` for frames taken as byte strings (see Syslog.parseRaw), in place: each packet takes
 * its line's place in `lines`, which becomes the array of packets (one array per socket read, not
 * two: the second, grown packet by packet, was ~20 bytes of garbage a line).
 */
export const parseRawLines = (
  lines: Array<string>,
  receivedAt: Date,
  fallbackHostname: string,
  stats: InputStats
): Array<LogPacket> => {
  const out = lines as Array<string | LogPacket>
  let n = 0
  for (let i = 0; i < lines.length; i++) {
    const result = Syslog.parseRaw(lines[i]!, receivedAt, fallbackHostname)
    if (Syslog.isParseError(result)) {
      stats.malformed++
      stats.lastMalformed = result
    } else {
      out[n++] = result
    }
  }
  out.length = n
  stats.records += n
  return out as Array<LogPacket>
}
