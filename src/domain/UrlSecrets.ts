/**
 * What of a URL is secret, worked out on the raw string before any parser sees it (so that no
 * parse error can show a credential): the URL cut into scheme, user info and the rest as a person
 * would cut it; `redact`, the only printable form of an endpoint (user info removed, every path
 * segment and foreign query value masked with a short fingerprint); `secretsOf`, the pieces a
 * receiver's answer must not echo back.
 */
import { Buffer } from "node:buffer"
import { createHash } from "node:crypto"

/** Query options logtrain reads itself; their values are not secret and stay visible in `display`. */
const OWN_OPTIONS = new Set(["insecure", "auth", "index", "framing", "format", "encoding", "compression", "labels", "metadata"])

/** Path segments logtrain writes itself (Elasticsearch's endpoint), shown as they are. */
const OWN_SEGMENTS = new Set(["", "_bulk"])

/**
 * A URL cut where a person reading it would cut it, on the raw string, before any parser sees it:
 * the user info is everything between `://` and the `@` followed by the host — the first `@` before
 * the first `/` after which comes a well-formed `host[:port]` ended by `/`, `?`, `#` or the end (if
 * none is, the last `@` before the first `/`). So a password may hold `#`, `?`, `:` and `@` and
 * still be taken whole, and a query may hold an `@` even without a path; a `/` in a password must
 * be written `%2F`.
 */
export interface Parts {
  readonly scheme: string
  readonly userInfo: string | undefined
  /** Host, port, path, query and fragment. */
  readonly rest: string
}

/** A host name, IPv4 or bracketed IPv6 address, and maybe a port: what may follow user info. */
const HOST_AFTER_USER_INFO = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]+)(?::[0-9]{1,5})?(?:[/?#]|$)/

export const split = (url: string): Parts | undefined => {
  const separator = url.indexOf("://")
  if (separator <= 0) return undefined
  const scheme = url.slice(0, separator)
  const rest = url.slice(separator + 3)
  const slash = rest.indexOf("/")
  const end = slash < 0 ? rest.length : slash
  let last = -1
  for (let at = rest.indexOf("@"); at >= 0 && at < end; at = rest.indexOf("@", at + 1)) {
    if (HOST_AFTER_USER_INFO.test(rest.slice(at + 1, at + 300))) {
      return { scheme, userInfo: rest.slice(0, at), rest: rest.slice(at + 1) }
    }
    last = at
  }
  return last < 0
    ? { scheme, userInfo: undefined, rest }
    : { scheme, userInfo: rest.slice(0, last), rest: rest.slice(last + 1) }
}

/** User info with every character a URL parser would read as a delimiter percent-encoded. */
export const encodeUserInfo = (userInfo: string): string => {
  const colon = userInfo.indexOf(":")
  return colon < 0
    ? encodeUserPart(userInfo)
    : `${encodeUserPart(userInfo.slice(0, colon))}:${encodeUserPart(userInfo.slice(colon + 1))}`
}

const encodeUserPart = (part: string): string =>
  part.replace(/%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=%]/gu, encodeChar)

/** A character percent-encoded; a lone surrogate (no character at all) as U+FFFD. */
const encodeChar = (c: string): string => {
  try {
    return encodeURIComponent(c)
  } catch {
    return "%EF%BF%BD"
  }
}

/** A percent-decoded URL component; one that does not decode (`%ff`) is taken as written. */
export const decodeComponent = (part: string): string => {
  try {
    return decodeURIComponent(part)
  } catch {
    return part
  }
}

/** An option's value for an error message: quoted, or `***` if it could be anything but an option. */
export const quoted = (value: string): string => (OWN_VALUE.test(value) ? `"${value}"` : "***")

const OWN_VALUE = /^[A-Za-z0-9_.,-]{0,64}$/

export const shownScheme = (scheme: string): string => (/^[a-z][a-z0-9+.-]{0,31}$/i.test(scheme) ? scheme : "***")

const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]{0,5})?$/
const PARAM_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,31}$/

/** The pieces of an endpoint `redact` hides, as written; the ones with `=` are query values. */
const hiddenParts = (parts: Parts) => {
  let rest = parts.rest
  let fragment: string | undefined
  const hash = rest.indexOf("#")
  if (hash >= 0) {
    fragment = rest.slice(hash + 1)
    rest = rest.slice(0, hash)
  }
  const queryAt = rest.indexOf("?")
  const query = queryAt >= 0 ? rest.slice(queryAt + 1) : undefined
  const beforeQuery = queryAt >= 0 ? rest.slice(0, queryAt) : rest
  const pathAt = beforeQuery.search(/[/\\]/)
  const authority = pathAt >= 0 ? beforeQuery.slice(0, pathAt) : beforeQuery
  const path = pathAt >= 0 ? beforeQuery.slice(pathAt + 1).split(/[/\\]/) : []
  const params = (query ?? "").split("&").filter((p) => p.length > 0).map((param) => {
    const eq = param.indexOf("=")
    return eq < 0 ? { name: undefined, value: param } : { name: param.slice(0, eq), value: param.slice(eq + 1) }
  })
  return { authority, path, query, params, fragment }
}

/**
 * A printable form of any endpoint, parsable or not — the only form of a drain URL that may appear
 * in logs, metric labels and error messages. It keeps what tells drains apart and nothing that can
 * be a secret:
 *
 * - scheme, host and port as written (a host:port that does not look like one is `***`);
 * - user info (see `split`) → `***@`;
 * - every path segment → `***` (Elasticsearch's own `_bulk` and empty ones stay), so the shape of
 *   the path shows, not its words;
 * - query: logtrain's own options with their values (`ca` shortened to `…`); any other parameter's
 *   value → `***`, a parameter without a value or with an odd name → `***`;
 * - the fragment is left out;
 * - when anything was hidden, `#` and four hex digits of a SHA-256 of what was hidden, so two drains
 *   that differ only in a secret (two webhooks of one host) have different names in logs and
 *   metric labels. Four digits tell apart the few drains one node runs; 65,536 secrets share each
 *   value, so it cannot give a secret away.
 */
export const redact = (endpoint: string): string => {
  const parts = split(endpoint.trim())
  if (parts === undefined) return "(unparsable)"
  const { authority, fragment, params, path, query } = hiddenParts(parts)
  const hidden: Array<string> = []
  const hide = (value: string) => {
    hidden.push(value)
    return "***"
  }
  let shown = `${shownScheme(parts.scheme)}://`
  if (parts.userInfo !== undefined) shown += `${hide(parts.userInfo)}@`
  shown += HOST_PORT.test(authority) ? authority : hide(authority)
  for (const segment of path) shown += `/${OWN_SEGMENTS.has(segment) ? segment : hide(segment)}`
  if (query !== undefined) {
    shown += `?${
      params.map(({ name, value }) => {
        if (name === undefined || !PARAM_NAME.test(name)) return hide(name === undefined ? value : `${name}=${value}`)
        const own = name.toLowerCase()
        if (own === "ca") return `${name}=…`
        return OWN_OPTIONS.has(own) && OWN_VALUE.test(value) ? `${name}=${value}` : `${name}=${hide(value)}`
      }).join("&")
    }`
  }
  if (fragment !== undefined) hide(fragment)
  if (hidden.length === 0) return shown
  return `${shown}#${createHash("sha256").update(hidden.join("\u0000")).digest("hex").slice(0, 4)}`
}

/**
 * The secrets of an endpoint — what `redact` hides — as they may be echoed back: as written,
 * percent-decoded, and as a Basic/ApiKey header carries them. For masking receivers' answers.
 */
export const secretsOf = (endpoint: string): ReadonlyArray<string> => {
  const parts = split(endpoint.trim())
  if (parts === undefined) return [endpoint.trim()]
  const { authority, fragment, params, path } = hiddenParts(parts)
  const found = new Set<string>()
  const add = (value: string) => {
    for (const form of [value, decodeComponent(value), decodeComponent(value.replace(/\+/g, " "))]) found.add(form)
  }
  if (parts.userInfo !== undefined) {
    add(parts.userInfo)
    const colon = parts.userInfo.indexOf(":")
    const rawUser = colon < 0 ? parts.userInfo : parts.userInfo.slice(0, colon)
    const rawPassword = colon < 0 ? "" : parts.userInfo.slice(colon + 1)
    add(rawUser)
    add(rawPassword)
    // As a Basic or ApiKey header carries them.
    found.add(Buffer.from(`${decodeComponent(rawUser)}:${decodeComponent(rawPassword)}`).toString("base64"))
  }
  if (!HOST_PORT.test(authority)) add(authority)
  for (const segment of path) if (!OWN_SEGMENTS.has(segment)) add(segment)
  for (const { name, value } of params) {
    const own = name?.toLowerCase()
    if (own === undefined || (own !== "ca" && !OWN_OPTIONS.has(own))) add(value)
  }
  if (fragment !== undefined) add(fragment)
  return [...found].filter((secret) => secret.length > 0)
}

