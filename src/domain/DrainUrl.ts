/**
 * Drain URLs: where a route sends logs. Users write them (annotations, table rows, routes files), so
 * parsing never throws: it returns a DrainUrl or a DrainUrlError that says what is wrong.
 *
 * One table below maps every scheme the originals accepted to the kind of drain it names. Each
 * parsed URL carries `display`, a printable form with credentials removed, which is the only form
 * of an endpoint that may appear in logs, metric labels and error messages.
 */
import { Buffer } from "node:buffer"
import { createHash } from "node:crypto"
import { Data, Redacted, Result } from "effect"
import type { Framing } from "./syslog/Framing.ts"

export type SyslogTransport = "tcp" | "udp" | "tls" | "http" | "https"

interface Common {
  /** The URL as written in the route; the key drains are opened by. */
  readonly endpoint: string
  /** The URL with anything that may be secret masked (see `redact`): the only form that may be shown. */
  readonly display: string
}

/** `syslog+tcp://`, `syslog+udp://` (and `syslog://`), `syslog+tls://`, `syslog+http(s)://`. */
export interface SyslogDrainUrl extends Common {
  readonly _tag: "Syslog"
  readonly transport: SyslogTransport
  readonly host: string
  readonly port: number
  /** For `syslog+http(s)`: the POST target (`http(s)://…`, without logtrain's own options); empty otherwise. */
  readonly url: string
  /** For stream transports: `newline` (the original's, default for tcp) or `octet-counting` (tls). */
  readonly framing: Framing
  /** For `syslog+tls`/`syslog+https`: extra trusted CA certificates (PEM), added to the system roots. */
  readonly ca: string | undefined
  /** For `syslog+tls`/`syslog+https`: skip certificate verification. */
  readonly insecure: boolean
}

/** `http://`, `https://`: JSON packets POSTed to the URL. */
export interface HttpDrainUrl extends Common {
  readonly _tag: "Http"
  /** The target, without logtrain's own options. */
  readonly url: string
  /** For `https`: extra trusted CA certificates (PEM), added to the system roots. */
  readonly ca: string | undefined
  readonly insecure: boolean
  /**
   * `array`: a batch as one JSON array (the default); `ndjson`: one object per line;
   * `single`: one object per request, as the original.
   */
  readonly format: "array" | "ndjson" | "single"
}

export type ElasticsearchAuth =
  | { readonly _tag: "None" }
  | { readonly _tag: "Basic"; readonly username: string; readonly password: Redacted.Redacted<string> }
  | { readonly _tag: "Bearer"; readonly token: Redacted.Redacted<string> }
  | { readonly _tag: "ApiKey"; readonly id: string; readonly key: Redacted.Redacted<string> }

/** `es+https://`, `es+http://`, `elasticsearch+http(s)://`, and `es://`/`elasticsearch://` (https). */
export interface ElasticsearchDrainUrl extends Common {
  readonly _tag: "Elasticsearch"
  /** The `_bulk` URL, without credentials or logtrain's own options. */
  readonly bulkUrl: string
  readonly auth: ElasticsearchAuth
  /** Index name; absent means the packet's hostname, as in the original. */
  readonly index: string | undefined
  /** For https: extra trusted CA certificates (PEM), added to the system roots. */
  readonly ca: string | undefined
  readonly insecure: boolean
}

/** `persistent://key`: lines stored in Postgres, served at `{PERSISTENT_PATH}key`. */
export interface PersistentDrainUrl extends Common {
  readonly _tag: "Persistent"
  readonly key: string
}

/** `stdout://`: one formatted line per packet on standard output, for demos and debugging. */
export interface StdoutDrainUrl extends Common {
  readonly _tag: "Stdout"
  /** `text` (`<time> <hostname>[<tag>]: <message>`, the default), `json` or `rfc5424`. */
  readonly format: "text" | "json" | "rfc5424"
}

/** How an HTTP drain compresses its bodies: `gzip` those of more than a few KiB (the default), or `none`. */
export type Compression = "gzip" | "none"

/** `otlp+http://`, `otlp+https://`: OTLP/HTTP logs (`/v1/logs` unless a path is given; port 4318). */
export interface OtlpDrainUrl extends Common {
  readonly _tag: "Otlp"
  /** The POST target, without logtrain's own options (user info kept: the transport sends it as Basic auth). */
  readonly url: string
  /** `protobuf` (`application/x-protobuf`, the spec's default) or `json`. */
  readonly encoding: "protobuf" | "json"
  readonly compression: Compression
  /** For `otlp+https`: extra trusted CA certificates (PEM), added to the system roots. */
  readonly ca: string | undefined
  readonly insecure: boolean
}

/** Fields of a packet a Loki drain may make stream labels of, besides `app` (the hostname). */
export const lokiLabels = ["level", "facility", "tag", "namespace", "pod", "container"] as const
export type LokiLabel = typeof lokiLabels[number]

/** `loki+http://`, `loki+https://`: the Loki push API (`/loki/api/v1/push`; port 3100 for http). */
export interface LokiDrainUrl extends Common {
  readonly _tag: "Loki"
  /** The push URL, without logtrain's own options (user info kept: sent as Basic auth). */
  readonly url: string
  /** `X-Scope-OrgID`, for multi-tenant Loki. */
  readonly tenant: string | undefined
  /** Stream labels besides `app`, from `?labels=`. */
  readonly labels: ReadonlyArray<LokiLabel>
  /** Where the other fields go: Loki 3's `structured` metadata (default), or the `line`, as logfmt. */
  readonly metadata: "structured" | "line"
  readonly compression: Compression
  readonly ca: string | undefined
  readonly insecure: boolean
}

export type DrainUrl =
  | SyslogDrainUrl
  | HttpDrainUrl
  | ElasticsearchDrainUrl
  | PersistentDrainUrl
  | StdoutDrainUrl
  | OtlpDrainUrl
  | LokiDrainUrl

export type DrainKind = DrainUrl["_tag"]

export class DrainUrlError extends Data.TaggedError("DrainUrlError")<{
  readonly reason: "InvalidUrl" | "UnknownScheme" | "MissingHost" | "InvalidPort" | "InvalidOption" | "InvalidKey"
  /** The endpoint, redacted. */
  readonly endpoint: string
  readonly detail: string
}> {
  override get message(): string {
    return `invalid drain URL ${this.endpoint}: ${this.detail}`
  }
}

/** The longest key `persistent://` accepts, as the original's `varchar(128)`. */
export const MAX_PERSISTENT_KEY = 128

type Parser = (url: URL, endpoint: string, display: string) => Result.Result<DrainUrl, DrainUrlError>

const syslog = (transport: SyslogTransport, defaultPort: number): Parser => (url, endpoint, display) =>
  Result.gen(function*() {
    const host = yield* hostOf(url, display)
    const port = yield* portOf(url, defaultPort, display)
    const insecure = yield* flag(url, "insecure", display)
    const framing = yield* framingOf(url, transport === "tls" ? "octet-counting" : "newline", display)
    const ca = yield* caOf(url, display)
    let target = ""
    if (transport === "http" || transport === "https") {
      const t = new URL(`${transport}://${url.host}${url.pathname || "/"}`)
      t.username = url.username
      t.password = url.password
      t.search = withoutOptions(url.search, ["insecure", "ca", "framing"])
      target = t.href
    }
    return {
      _tag: "Syslog",
      endpoint,
      display,
      transport,
      host,
      port,
      url: target,
      framing,
      ca,
      insecure
    } satisfies SyslogDrainUrl
  })

const http: Parser = (url, endpoint, display) =>
  Result.gen(function*() {
    yield* hostOf(url, display)
    const insecure = yield* flag(url, "insecure", display)
    const ca = yield* caOf(url, display)
    const format = url.searchParams.get("format") ?? "array"
    if (format !== "array" && format !== "ndjson" && format !== "single") {
      return yield* invalid("InvalidOption", display, `format must be array, ndjson or single, not ${quoted(format)}`)
    }
    const target = new URL(url.href)
    target.search = withoutOptions(url.search, ["insecure", "ca", "format"])
    return { _tag: "Http", endpoint, display, url: target.href, ca, insecure, format } satisfies HttpDrainUrl
  })

const elasticsearch = (protocol: "http:" | "https:"): Parser => (url, endpoint, display) =>
  Result.gen(function*() {
    yield* hostOf(url, display)
    const insecure = yield* flag(url, "insecure", display)
    const ca = yield* caOf(url, display)
    const mode = (url.searchParams.get("auth") ?? "basic").toLowerCase()
    if (mode !== "basic" && mode !== "bearer" && mode !== "apikey") {
      return yield* invalid("InvalidOption", display, `auth must be basic, bearer or apikey, not ${quoted(mode)}`)
    }
    const username = decodeComponent(url.username)
    const password = decodeComponent(url.password)
    // As the original: credentials are used only when a password is present.
    const auth: ElasticsearchAuth = password === ""
      ? { _tag: "None" }
      : mode === "bearer"
      ? { _tag: "Bearer", token: Redacted.make(password) }
      : mode === "apikey"
      ? { _tag: "ApiKey", id: username, key: Redacted.make(password) }
      : { _tag: "Basic", username, password: Redacted.make(password) }
    const index = url.searchParams.get("index") ?? undefined
    if (index !== undefined && !isIndexName(index)) {
      return yield* invalid("InvalidOption", display, `index ${quoted(index)} is not a valid Elasticsearch index name`)
    }
    const bulk = new URL(`${protocol}//${url.host}${url.pathname}`)
    if (!/\/_bulk\/?$/.test(bulk.pathname)) {
      bulk.pathname = bulk.pathname.endsWith("/") ? `${bulk.pathname}_bulk` : `${bulk.pathname}/_bulk`
    }
    bulk.search = withoutOptions(url.search, ["auth", "index", "insecure", "ca"])
    return {
      _tag: "Elasticsearch",
      endpoint,
      display,
      bulkUrl: bulk.href,
      auth,
      index,
      ca,
      insecure
    } satisfies ElasticsearchDrainUrl
  })

const persistent: Parser = (_url, endpoint, display) => {
  const key = endpoint.slice(endpoint.indexOf("://") + 3).replace(/\/$/, "")
  if (key.length === 0) return Result.fail(invalidError("InvalidKey", display, "the key is empty"))
  if (key.length > MAX_PERSISTENT_KEY) {
    return Result.fail(
      invalidError("InvalidKey", display, `the key has ${key.length} characters; at most ${MAX_PERSISTENT_KEY} are allowed`)
    )
  }
  return Result.succeed({ _tag: "Persistent", endpoint, display, key } satisfies PersistentDrainUrl)
}

const stdout: Parser = (url, endpoint, display) => {
  const format = url.searchParams.get("format") ?? "text"
  return format === "text" || format === "json" || format === "rfc5424"
    ? Result.succeed({ _tag: "Stdout", endpoint, display, format } satisfies StdoutDrainUrl)
    : invalid("InvalidOption", display, `format must be text, json or rfc5424, not ${quoted(format)}`)
}

const compressionOf = (url: URL, display: string): Result.Result<Compression, DrainUrlError> => {
  const value = url.searchParams.get("compression") ?? "gzip"
  return value === "gzip" || value === "none"
    ? Result.succeed(value)
    : invalid("InvalidOption", display, `compression must be gzip or none, not ${quoted(value)}`)
}

const otlp = (protocol: "http:" | "https:"): Parser => (url, endpoint, display) =>
  Result.gen(function*() {
    yield* hostOf(url, display)
    const port = yield* portOf(url, 4318, display)
    const insecure = yield* flag(url, "insecure", display)
    const ca = yield* caOf(url, display)
    const compression = yield* compressionOf(url, display)
    const encoding = url.searchParams.get("encoding") ?? "protobuf"
    if (encoding !== "protobuf" && encoding !== "json") {
      return yield* invalid("InvalidOption", display, `encoding must be protobuf or json, not ${quoted(encoding)}`)
    }
    const target = new URL(`${protocol}//${url.host}`)
    target.port = String(port)
    target.pathname = url.pathname === "" || url.pathname === "/" ? "/v1/logs" : url.pathname
    target.username = url.username
    target.password = url.password
    target.search = withoutOptions(url.search, ["insecure", "ca", "encoding", "compression"])
    return { _tag: "Otlp", endpoint, display, url: target.href, encoding, compression, ca, insecure } satisfies OtlpDrainUrl
  })

const LOKI_PUSH_PATH = "/loki/api/v1/push"

const loki = (protocol: "http:" | "https:"): Parser => (url, endpoint, display) =>
  Result.gen(function*() {
    yield* hostOf(url, display)
    const port = yield* portOf(url, protocol === "http:" ? 3100 : 443, display)
    const insecure = yield* flag(url, "insecure", display)
    const ca = yield* caOf(url, display)
    const compression = yield* compressionOf(url, display)
    const metadata = url.searchParams.get("metadata") ?? "structured"
    if (metadata !== "structured" && metadata !== "line") {
      return yield* invalid("InvalidOption", display, `metadata must be structured or line, not ${quoted(metadata)}`)
    }
    const labels: Array<LokiLabel> = []
    for (const name of (url.searchParams.get("labels") ?? "").split(",").map((l) => l.trim()).filter((l) => l !== "")) {
      if (!(lokiLabels as ReadonlyArray<string>).includes(name)) {
        return yield* invalid("InvalidOption", display, `labels may name ${lokiLabels.join(", ")}; not ${quoted(name)}`)
      }
      if (!labels.includes(name as LokiLabel)) labels.push(name as LokiLabel)
    }
    const tenant = url.searchParams.get("tenant") || undefined
    const target = new URL(`${protocol}//${url.host}`)
    target.port = String(port)
    const path = url.pathname.replace(/\/+$/, "")
    // A path is a prefix (Loki behind a gateway) unless it already ends with the push API's.
    target.pathname = path.endsWith(LOKI_PUSH_PATH) ? path : `${path}${LOKI_PUSH_PATH}`
    target.username = url.username
    target.password = url.password
    target.search = withoutOptions(url.search, ["insecure", "ca", "tenant", "labels", "metadata", "compression"])
    return {
      _tag: "Loki",
      endpoint,
      display,
      url: target.href,
      tenant,
      labels,
      metadata,
      compression,
      ca,
      insecure
    } satisfies LokiDrainUrl
  })

/** Every scheme logtrain accepts (lower case), and what it means. */
export const schemes: Readonly<Record<string, Parser>> = {
  "syslog+tcp": syslog("tcp", 514),
  "syslog+udp": syslog("udp", 514),
  "syslog": syslog("udp", 514),
  "syslog+tls": syslog("tls", 6514),
  "syslog+http": syslog("http", 80),
  "syslog+https": syslog("https", 443),
  "http": http,
  "https": http,
  "es+http": elasticsearch("http:"),
  "es+https": elasticsearch("https:"),
  "es": elasticsearch("https:"),
  "elasticsearch+http": elasticsearch("http:"),
  "elasticsearch+https": elasticsearch("https:"),
  "elasticsearch": elasticsearch("https:"),
  "persistent": persistent,
  "stdout": stdout,
  "otlp+http": otlp("http:"),
  "otlp+https": otlp("https:"),
  "loki+http": loki("http:"),
  "loki+https": loki("https:")
}

/** Parses a drain URL. Scheme names are case-insensitive, as in the original. */
export const parse = (endpoint: string): Result.Result<DrainUrl, DrainUrlError> => {
  const display = redact(endpoint)
  const trimmed = endpoint.trim()
  const parts = split(trimmed)
  if (parts === undefined) return Result.fail(invalidError("InvalidUrl", display, "expected scheme://..."))
  const scheme = parts.scheme.toLowerCase()
  const parser = schemes[scheme]
  if (parser === undefined) {
    return Result.fail(invalidError("UnknownScheme", display, `unknown scheme "${shownScheme(scheme)}"`))
  }
  let url: URL
  try {
    // User info as split here, encoded, so a password holding `#`, `?` or `@` means what it says.
    url = new URL(`${scheme}://${parts.userInfo === undefined ? "" : `${encodeUserInfo(parts.userInfo)}@`}${parts.rest}`)
  } catch {
    if (scheme !== "persistent") {
      return Result.fail(invalidError(
        "InvalidUrl",
        display,
        parts.userInfo === undefined && parts.rest.includes("@")
          ? "not a valid URL (a / in a user name or password must be written %2F)"
          : "not a valid URL"
      ))
    }
    url = new URL("persistent://")
  }
  try {
    return parser(url, trimmed, display)
  } catch {
    // A parser's own `new URL(…)` of what the first parse let through (an opaque host such as
    // `--%25` is no http host): still never a throw.
    return Result.fail(invalidError("InvalidUrl", display, "not a valid URL"))
  }
}

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
interface Parts {
  readonly scheme: string
  readonly userInfo: string | undefined
  /** Host, port, path, query and fragment. */
  readonly rest: string
}

/** A host name, IPv4 or bracketed IPv6 address, and maybe a port: what may follow user info. */
const HOST_AFTER_USER_INFO = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]+)(?::[0-9]{1,5})?(?:[/?#]|$)/

const split = (url: string): Parts | undefined => {
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
const encodeUserInfo = (userInfo: string): string => {
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
const quoted = (value: string): string => (OWN_VALUE.test(value) ? `"${value}"` : "***")

const OWN_VALUE = /^[A-Za-z0-9_.,-]{0,64}$/

const shownScheme = (scheme: string): string => (/^[a-z][a-z0-9+.-]{0,31}$/i.test(scheme) ? scheme : "***")

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

const invalidError = (reason: DrainUrlError["reason"], endpoint: string, detail: string) =>
  new DrainUrlError({ reason, endpoint, detail })

const invalid = (reason: DrainUrlError["reason"], endpoint: string, detail: string) =>
  Result.fail(invalidError(reason, endpoint, detail))

const hostOf = (url: URL, display: string): Result.Result<string, DrainUrlError> => {
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname
  return host.length === 0 ? invalid("MissingHost", display, "a host is required") : Result.succeed(host)
}

const portOf = (url: URL, defaultPort: number, display: string): Result.Result<number, DrainUrlError> => {
  if (url.port === "") return Result.succeed(defaultPort)
  const port = Number(url.port)
  return Number.isInteger(port) && port > 0 && port < 65536
    ? Result.succeed(port)
    : invalid("InvalidPort", display, `port "${url.port}" is not between 1 and 65535`)
}

const flag = (url: URL, name: string, display: string): Result.Result<boolean, DrainUrlError> => {
  const value = url.searchParams.get(name)
  if (value === null || value === "" || value === "false") return Result.succeed(false)
  if (value === "true") return Result.succeed(true)
  return invalid("InvalidOption", display, `${name} must be true or false, not ${quoted(value)}`)
}

const framingOf = (url: URL, fallback: Framing, display: string): Result.Result<Framing, DrainUrlError> => {
  const value = url.searchParams.get("framing")
  if (value === null || value === "") return Result.succeed(fallback)
  if (value === "octet-counting" || value === "newline") return Result.succeed(value)
  return invalid("InvalidOption", display, `framing must be octet-counting or newline, not ${quoted(value)}`)
}

/**
 * `ca` is a base64 PEM bundle, as in the original. A query string turns `+` into a space, and a
 * space is never base64, so it is put back before decoding.
 */
const caOf = (url: URL, display: string): Result.Result<string | undefined, DrainUrlError> => {
  const value = url.searchParams.get("ca")
  if (value === null || value === "") return Result.succeed(undefined)
  const pem = Buffer.from(value.replace(/ /g, "+"), "base64").toString("utf8")
  return pem.includes("-----BEGIN CERTIFICATE-----")
    ? Result.succeed(pem)
    : invalid("InvalidOption", display, "ca must be a base64-encoded PEM certificate bundle")
}

/** Elasticsearch's rules: lower case, none of \\ / * ? " < > | , # : or space, not starting with - _ +. */
const isIndexName = (name: string): boolean =>
  name.length > 0 && name.length <= 255 && name !== "." && name !== ".." && !/^[-_+]/.test(name) &&
  !/[\\/*?"<>| ,#:A-Z]/.test(name)

/** The query without logtrain's own options; the others are kept as written (`?token` stays `?token`). */
const withoutOptions = (search: string, own: ReadonlyArray<string>): string => {
  const kept = search.replace(/^\?/, "").split("&").filter((param) => {
    if (param === "") return false
    const eq = param.indexOf("=")
    return !own.includes(decodeComponent(eq < 0 ? param : param.slice(0, eq)))
  })
  return kept.length === 0 ? "" : `?${kept.join("&")}`
}
