/**
 * Reading a drain URL's parts and options, each with a DrainUrlError that says what is wrong:
 * host, port, the boolean and framing options, a CA bundle, an Elasticsearch index name, and the
 * query left once logtrain's own options are taken out.
 */
import { Buffer } from "node:buffer"
import { Data, Result } from "effect"
import type { Framing } from "./syslog/Framing.ts"
import { decodeComponent, quoted } from "./UrlSecrets.ts"

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

export const invalidError = (reason: DrainUrlError["reason"], endpoint: string, detail: string) =>
  new DrainUrlError({ reason, endpoint, detail })

export const invalid = (reason: DrainUrlError["reason"], endpoint: string, detail: string) =>
  Result.fail(invalidError(reason, endpoint, detail))

export const hostOf = (url: URL, display: string): Result.Result<string, DrainUrlError> => {
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname
  return host.length === 0 ? invalid("MissingHost", display, "a host is required") : Result.succeed(host)
}

export const portOf = (url: URL, defaultPort: number, display: string): Result.Result<number, DrainUrlError> => {
  if (url.port === "") return Result.succeed(defaultPort)
  const port = Number(url.port)
  return Number.isInteger(port) && port > 0 && port < 65536
    ? Result.succeed(port)
    : invalid("InvalidPort", display, `port "${url.port}" is not between 1 and 65535`)
}

export const flag = (url: URL, name: string, display: string): Result.Result<boolean, DrainUrlError> => {
  const value = url.searchParams.get(name)
  if (value === null || value === "" || value === "false") return Result.succeed(false)
  if (value === "true") return Result.succeed(true)
  return invalid("InvalidOption", display, `${name} must be true or false, not ${quoted(value)}`)
}

export const framingOf = (url: URL, fallback: Framing, display: string): Result.Result<Framing, DrainUrlError> => {
  const value = url.searchParams.get("framing")
  if (value === null || value === "") return Result.succeed(fallback)
  if (value === "octet-counting" || value === "newline") return Result.succeed(value)
  return invalid("InvalidOption", display, `framing must be octet-counting or newline, not ${quoted(value)}`)
}

/**
 * `ca` is a base64 PEM bundle, as in the original. A query string turns `+` into a space, and a
 * space is never base64, so it is put back before decoding.
 */
export const caOf = (url: URL, display: string): Result.Result<string | undefined, DrainUrlError> => {
  const value = url.searchParams.get("ca")
  if (value === null || value === "") return Result.succeed(undefined)
  const pem = Buffer.from(value.replace(/ /g, "+"), "base64").toString("utf8")
  return pem.includes("-----BEGIN CERTIFICATE-----")
    ? Result.succeed(pem)
    : invalid("InvalidOption", display, "ca must be a base64-encoded PEM certificate bundle")
}

/** Elasticsearch's rules: lower case, none of \\ / * ? " < > | , # : or space, not starting with - _ +. */
export const isIndexName = (name: string): boolean =>
  name.length > 0 && name.length <= 255 && name !== "." && name !== ".." && !/^[-_+]/.test(name) &&
  !/[\\/*?"<>| ,#:A-Z]/.test(name)

/** The query without logtrain's own options; the others are kept as written (`?token` stays `?token`). */
export const withoutOptions = (search: string, own: ReadonlyArray<string>): string => {
  const kept = search.replace(/^\?/, "").split("&").filter((param) => {
    if (param === "") return false
    const eq = param.indexOf("=")
    return !own.includes(decodeComponent(eq < 0 ? param : param.slice(0, eq)))
  })
  return kept.length === 0 ? "" : `?${kept.join("&")}`
}
