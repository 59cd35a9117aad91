/**
 * Drain URLs: where a route sends logs. Users write them (annotations, table rows, routes files), so
 * parsing never throws: it returns a DrainUrl or a DrainUrlError that says what is wrong.
 *
 * One table below maps every scheme the originals accepted to the kind of drain it names. Each
 * parsed URL carries `display`, a printable form with credentials removed, which is the only form
 * of an endpoint that may appear in logs, metric labels and error messages.
 */
import { Redacted, Result } from "effect"
import { caOf, DrainUrlError, flag, framingOf, hostOf, invalid, invalidError, isIndexName, portOf, withoutOptions } from "./DrainUrlOptions.ts"
import type { Framing } from "./syslog/Framing.ts"
import { decodeComponent, encodeUserInfo, quoted, redact, shownScheme, split } from "./UrlSecrets.ts"

export { DrainUrlError } from "./DrainUrlOptions.ts"
export { decodeComponent, redact, secretsOf } from "./UrlSecrets.ts"

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
