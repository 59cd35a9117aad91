/**
 * The routes file format (ROUTES, ROUTES_FILE): a JSON object from hostname (or `*`) to the drain
 * URLs its logs go to — an array, or a single string for one drain:
 *
 *     { "*": ["stdout://"], "api.default": ["syslog+tcp://logs.example.com:514"] }
 *
 * Only the shape is checked here; each URL is checked when its route is applied, so one bad URL
 * does not discard a whole file.
 */
import { Result, Schema } from "effect"
import type { Route } from "./Route.ts"

const RoutesObject = Schema.Record(Schema.String, Schema.Union([Schema.String, Schema.Array(Schema.String)]))

export const parse = (text: string): Result.Result<ReadonlyArray<Route>, string> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    return Result.fail(`not valid JSON: ${(error as Error).message}`)
  }
  const decoded = Schema.decodeUnknownResult(RoutesObject)(json)
  if (Result.isFailure(decoded)) {
    return Result.fail('expected an object of hostname → drain URL or [drain URLs], e.g. {"*": ["stdout://"]}')
  }
  const routes: Array<Route> = []
  for (const [hostname, value] of Object.entries(decoded.success)) {
    const endpoints = typeof value === "string" ? [value] : value
    if (hostname.trim().length === 0) return Result.fail("a hostname is empty")
    for (const endpoint of endpoints) routes.push({ hostname: hostname.trim(), endpoint: endpoint.trim() })
  }
  return Result.succeed(routes)
}
