/**
 * Request bodies on the shared HTTP server, for any route that takes one (the HTTP inputs,
 * logtail's API, later OTLP), held to two limits:
 *
 * - a size limit per body, checked as the body arrives — a declared Content-Length over it is
 *   refused before a byte is read, a chunked body as soon as it passes it — so a client can never
 *   make the server hold more than that (the server then closes the connection rather than read
 *   the rest: NodeHttpServer's teardown);
 * - a memory budget for all bodies at once (`HTTP_MAX_BODY_MEMORY`): a route holds its share —
 *   the declared length, else the size limit — from before the body is read until it is done
 *   with what it made of it (queued, stored), so that many clients at once cannot add up to more.
 *   A request that does not fit waits, unread (TCP holds its sender back), within the server's
 *   request timeout; each wait is counted (`logtrain_input_limited_total{input="http",
 *   reason="body_memory_wait"}`).
 */
import { Context, Data, Effect, Layer, Semaphore, Stream } from "effect"
import type { HttpServerRequest } from "effect/http"
import { Buffer } from "node:buffer"

export class BadRequest extends Data.TaggedError("BadRequest")<{
  readonly status: number
  readonly reason: string
}> {}

/** The memory all request bodies may take at once, shared by the routes of one server. */
export class BodyBudget extends Context.Service<BodyBudget, {
  readonly bytes: number
  readonly semaphore: Semaphore.Semaphore
  /** Requests that had to wait for room, so far. */
  readonly waits: () => number
  readonly countWait: () => void
}>()("logtrain/http/BodyBudget") {
  static readonly layer = (bytes: number) =>
    Layer.effect(
      BodyBudget,
      Effect.map(Semaphore.make(bytes), (semaphore) => {
        let waits = 0
        return BodyBudget.of({ bytes, semaphore, waits: () => waits, countWait: () => void waits++ })
      })
    )
}

/** The whole body, or a BadRequest: 413 past `maxBytes` (`limitName` says which setting), 400 if it breaks off. */
export const read = (
  request: HttpServerRequest.HttpServerRequest,
  maxBytes: number,
  limitName = "HTTP_MAX_BODY_SIZE"
): Effect.Effect<Buffer, BadRequest> => {
  const tooLarge = new BadRequest({ status: 413, reason: `the body is larger than ${maxBytes} bytes (${limitName})` })
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

/**
 * Reads the body (see `read`) within the server's body budget and runs `use` with it; the share
 * of the budget is held until `use` is done, and given back however it ends.
 */
export const withBody = <A, E, R>(
  request: HttpServerRequest.HttpServerRequest,
  maxBytes: number,
  use: (body: Buffer) => Effect.Effect<A, E, R>,
  limitName = "HTTP_MAX_BODY_SIZE"
): Effect.Effect<A, E | BadRequest, R | BodyBudget> =>
  Effect.flatMap(BodyBudget, (budget) => {
    const declared = Number(request.headers["content-length"])
    const expected = Number.isFinite(declared) && declared >= 0 ? Math.min(declared, maxBytes) : maxBytes
    // A body larger than the whole budget takes all of it, alone.
    const share = Math.max(1, Math.min(expected, budget.bytes))
    const work = Effect.flatMap(read(request, maxBytes, limitName), use)
    return budget.semaphore.withPermitsIfAvailable(share)(work).pipe(
      Effect.flatMap((done) =>
        done._tag === "Some"
          ? Effect.succeed(done.value)
          : Effect.suspend(() => {
            budget.countWait()
            return budget.semaphore.withPermits(share)(work)
          })
      )
    )
  })
