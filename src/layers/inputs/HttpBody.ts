/**
 * What the HTTP inputs share: reading a request body under a size limit, and one-line answers.
 * A body is read whole (it is one batch) and never beyond the limit: a larger one is refused with
 * 413 as soon as it is known to be too large.
 */
import { Data, Effect, Stream } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { Buffer } from "node:buffer"

export class BadRequest extends Data.TaggedError("BadRequest")<{
  readonly status: number
  readonly reason: string
}> {}

export const readBody = (
  request: HttpServerRequest.HttpServerRequest,
  maxBytes: number
): Effect.Effect<Buffer, BadRequest> => {
  const tooLarge = new BadRequest({ status: 413, reason: `the body is larger than ${maxBytes} bytes (HTTP_MAX_BODY_SIZE)` })
  const declared = Number(request.headers["content-length"])
  if (Number.isFinite(declared) && declared > maxBytes) return Effect.fail(tooLarge)
  return request.stream.pipe(
    Stream.mapError(() => new BadRequest({ status: 400, reason: "the body could not be read" })),
    Stream.runFoldEffect(() => ({ chunks: [] as Array<Uint8Array>, size: 0 }), (acc, chunk: Uint8Array) => {
      acc.size += chunk.length
      if (acc.size > maxBytes) return Effect.fail(tooLarge)
      acc.chunks.push(chunk)
      return Effect.succeed(acc)
    }),
    Effect.map(({ chunks }) => Buffer.concat(chunks))
  )
}

/** A plain-text answer of one line. */
export const answer = (status: number, line: string): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(`${line}\n`, { status })

/** "accepted 2 of 3; the first refused: <reason>" */
export const summary = (accepted: number, total: number, firstRefusal: string | undefined): string =>
  firstRefusal === undefined || accepted === total
    ? `accepted ${accepted} of ${total}`
    : `accepted ${accepted} of ${total}; the first refused: ${firstRefusal}`
