/**
 * HTTP `Retry-After` (RFC 9110 §10.2.3): how long a receiver asks to be left alone, as a number of
 * seconds or an HTTP date. OTLP and Loki receivers send it with 429 and 503.
 */

/** The delay in milliseconds a `Retry-After` value asks for at `now`, or undefined when it says nothing usable. */
export const parse = (value: string | undefined, now: number): number | undefined => {
  if (value === undefined) return undefined
  const text = value.trim()
  if (/^\d+$/.test(text)) return Number(text) * 1000
  const at = Date.parse(text)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}
