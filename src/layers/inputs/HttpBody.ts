/**
 * What the HTTP inputs share: reading a request body under a size limit, and one-line answers.
 * A body is read whole (it is one batch) and never beyond the limit: a larger one is refused with
 * 413 as soon as it is known to be too large, and counted.
 */
import { Effect } from "effect"
import { type HttpServerRequest, HttpServerResponse } from "effect/http"
import type { Buffer } from "node:buffer"
import * as RequestBody from "../http/RequestBody.ts"
import type { InputStats } from "./InputStats.ts"

export { BadRequest } from "../http/RequestBody.ts"

/**
 * A request body under a size limit, read without the server's body budget (RequestBody.read).
 * Prefer `withBody`, which also holds the body within HTTP_MAX_BODY_MEMORY.
 */
export const readBody = (request: HttpServerRequest.HttpServerRequest, maxBytes: number): Effect.Effect<Buffer, RequestBody.BadRequest> =>
  RequestBody.read(request, maxBytes)

/**
 * Runs `use` with the request's body, read under the inputs' size limit and the server's body
 * budget (see RequestBody.withBody); a 413 is counted as `body_too_large`.
 */
export const withBody = <A, E, R>(
  request: HttpServerRequest.HttpServerRequest,
  maxBytes: number,
  stats: InputStats,
  use: (body: Buffer) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | RequestBody.BadRequest, R | RequestBody.BodyBudget> =>
  RequestBody.withBody(request, maxBytes, use).pipe(
    Effect.tapError((error) =>
      Effect.sync(() => {
        if (error instanceof RequestBody.BadRequest && error.status === 413) {
          stats.limited.body_too_large = (stats.limited.body_too_large ?? 0) + 1
        }
      })
    )
  )

/** A plain-text answer of one line. */
export const answer = (status: number, line: string): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(`${line}\n`, { status })

/** "accepted 2 of 3; the first refused: <reason>" */
export const summary = (accepted: number, total: number, firstRefusal: string | undefined): string =>
  firstRefusal === undefined || accepted === total
    ? `accepted ${accepted} of ${total}`
    : `accepted ${accepted} of ${total}; the first refused: ${firstRefusal}`
