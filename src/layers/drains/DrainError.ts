/**
 * The one error drains fail with. Its reason says what went wrong and, through `retryable`, whether
 * sending the same batch again can help; the DrainRunner's retry schedule asks nothing else.
 * Messages name the drain by its redacted display form only.
 */
import { Data, type Duration } from "effect"
import { excerpt } from "../../domain/Excerpt.ts"
import type { TransportError } from "../transports/TransportError.ts"

export type DrainErrorReason =
  /** Could not connect (refused, unreachable, DNS, TLS handshake). */
  | "Connect"
  /** The connection broke while sending. */
  | "Write"
  /** The receiver did not answer in time. */
  | "Timeout"
  /** The receiver is overloaded or failing (HTTP 429 / 5xx). */
  | "Unavailable"
  /** The receiver refused this data for good (HTTP 4xx, a mapping error): resending cannot help. */
  | "Rejected"
  /** This drain cannot run here (a kind not enabled or not configured). */
  | "Unsupported"

const retryable: Record<DrainErrorReason, boolean> = {
  Connect: true,
  Write: true,
  Timeout: true,
  Unavailable: true,
  Rejected: false,
  Unsupported: false
}

export class DrainError extends Data.TaggedError("DrainError")<{
  readonly reason: DrainErrorReason
  /** The drain, redacted. */
  readonly drain: string
  readonly detail: string
  /** A short code for the metric label of a refusal, e.g. `http_400`. */
  readonly code?: string | undefined
  /** For a batch refused for good after part of it went through: how many of it were delivered. */
  readonly delivered?: number | undefined
  /** How long the receiver asked to be left alone (HTTP Retry-After): the next try waits at least that. */
  readonly retryAfter?: Duration.Duration | undefined
}> {
  get retryable(): boolean {
    return retryable[this.reason]
  }

  override get message(): string {
    return `${this.drain}: ${this.reason}: ${this.detail}`
  }
}


/** A transport failure as a drain failure: all of them are worth retrying. */
export const fromTransport = (drain: string) => (error: TransportError): DrainError =>
  new DrainError({
    reason: error.reason === "Timeout"
      ? "Timeout"
      : error.reason === "Write" || error.reason === "Closed"
      ? "Write"
      : "Connect",
    drain,
    detail: error.message
  })

/**
 * What an HTTP answer means for a batch: nothing (delivered, 2xx); Unavailable, worth retrying
 * (408, 425, 429 and 5xx); or Rejected for good (any other status). The answer's body shows as a
 * short excerpt, never verbatim: a receiver may echo credentials (see Excerpt), and `secrets` (the
 * drain URL's, `DrainUrl.secretsOf`) are masked in it.
 */
export const fromHttpStatus = (
  drain: string,
  status: number,
  body: string,
  secrets: ReadonlyArray<string> = []
): DrainError | undefined => {
  if (status >= 200 && status < 300) return undefined
  const retryable = status === 408 || status === 425 || status === 429 || status >= 500
  const shown = excerpt(body, secrets)
  return new DrainError({
    reason: retryable ? "Unavailable" : "Rejected",
    drain,
    code: `http_${status}`,
    detail: `HTTP ${status}${shown === "" ? "" : `: ${shown}`}`
  })
}
