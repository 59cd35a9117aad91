/**
 * The routes file format (ROUTES, ROUTES_FILE): a JSON object from hostname (or `*`) to the drain
 * URLs its logs go to — an array, or a single string for one drain — or to an object with those
 * drains and per-app settings:
 *
 *     { "*": ["stdout://"], "api.default": ["syslog+tcp://logs.example.com:514"],
 *       "noisy.default": { "drains": ["syslog+tcp://logs.example.com:514"], "rate-limit": "500/s,burst=2000" } }
 *
 * Only the shape is checked here; each URL is checked when its route is applied, and each rate
 * limit when it is set, so one bad value does not discard a whole file.
 */
import { Result, Schema } from "effect"
import type { Route } from "./Route.ts"

const Drains = Schema.Union([Schema.String, Schema.Array(Schema.String)])
const Settings = Schema.Struct({
  drains: Schema.optionalKey(Drains),
  "rate-limit": Schema.optionalKey(Schema.String)
})
const RoutesObject = Schema.Record(Schema.String, Schema.Union([Drains, Settings]))

export interface RoutesJson {
  readonly routes: ReadonlyArray<Route>
  /** Rate limits (as written) by hostname. */
  readonly rateLimits: ReadonlyArray<{ readonly hostname: string; readonly spec: string }>
}

/** Routes and per-app settings from the file's text. */
export const parseAll = (text: string): Result.Result<RoutesJson, string> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    return Result.fail(`not valid JSON: ${(error as Error).message}`)
  }
  const decoded = Schema.decodeUnknownResult(RoutesObject)(json)
  if (Result.isFailure(decoded)) {
    return Result.fail(
      'expected an object of hostname → drain URL, [drain URLs] or {"drains": [...], "rate-limit": "500/s"}, e.g. {"*": ["stdout://"]}'
    )
  }
  const routes: Array<Route> = []
  const rateLimits: Array<{ hostname: string; spec: string }> = []
  for (const [key, value] of Object.entries(decoded.success)) {
    const hostname = key.trim()
    if (hostname.length === 0) return Result.fail("a hostname is empty")
    const settings: { readonly drains?: string | ReadonlyArray<string>; readonly "rate-limit"?: string } =
      typeof value === "string" || Array.isArray(value) ? { drains: value as string | ReadonlyArray<string> } : value as never
    const drains = settings.drains ?? []
    const endpoints = typeof drains === "string" ? [drains] : drains
    for (const endpoint of endpoints) routes.push({ hostname, endpoint: endpoint.trim() })
    const limit = settings["rate-limit"]
    if (limit !== undefined) rateLimits.push({ hostname, spec: limit })
  }
  return Result.succeed({ routes, rateLimits })
}

/** The routes alone. */
export const parse = (text: string): Result.Result<ReadonlyArray<Route>, string> => Result.map(parseAll(text), (all) => all.routes)
