/**
 * Failures of the byte transports (TCP, UDP, later TLS and HTTP), before any meaning is given to
 * the bytes. Drains translate them into DrainErrors; inputs into log lines and counters.
 */
import { Data } from "effect"

export class TransportError extends Data.TaggedError("TransportError")<{
  readonly reason: "Listen" | "Connect" | "Write" | "Timeout" | "Closed"
  /** host:port, never with credentials. */
  readonly address: string
  readonly detail: string
}> {
  override get message(): string {
    return `${this.reason} ${this.address}: ${this.detail}`
  }
}

/** A short description of a Node error: its code and message. */
export const describeCause = (cause: unknown): string => {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code
    return typeof code === "string" && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message
  }
  return String(cause)
}
