/**
 * Why a frame could not be read as syslog. Created only on failure, so the hot path pays nothing.
 */
import { Data } from "effect"

export class SyslogParseError extends Data.TaggedError("SyslogParseError")<{
  /** Short, stable reason, usable as a metric label. */
  readonly reason:
    | "MissingPriority"
    | "InvalidPriority"
    | "InvalidVersion"
    | "MissingField"
    | "Empty"
  /** The first characters of the offending frame, for a log line. */
  readonly excerpt: string
}> {
  override get message(): string {
    return `${this.reason}: ${JSON.stringify(this.excerpt)}`
  }
}

export const fail = (reason: SyslogParseError["reason"], line: string): SyslogParseError =>
  new SyslogParseError({ reason, excerpt: line.length > 80 ? `${line.slice(0, 80)}…` : line })
