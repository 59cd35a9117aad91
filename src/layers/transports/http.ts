/**
 * HTTP(S) POSTs for drains. Each client has its own connection pool (an undici Agent) carrying its
 * drain's TLS settings: the system roots plus an extra CA, or no verification with `insecure`.
 *
 * Credentials in the URL (`https://user:pass@host/`) are taken out of it and sent as a Basic
 * Authorization header, and no message here ever contains the URL itself: errors name the drain
 * by its redacted form, which the caller passes in.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Duration, Effect, Scope, Stream } from "effect"
import { HttpClientRequest, type HttpClientResponse } from "effect/http"
import { Buffer } from "node:buffer"
import type * as Undici from "undici"
import { decodeComponent } from "../../domain/DrainUrl.ts"
import { type ClientTls, trustedWith } from "./tls.ts"
import { describeCause, TransportError } from "./TransportError.ts"

export interface ClientOptions {
  readonly url: string
  /** How the URL may be shown (redacted). */
  readonly display: string
  readonly tls: ClientTls
  readonly timeout: Duration.Duration
}

export interface Response {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  /**
   * The body, decoded as UTF-8: whole when it fits the post's `readLimit` (4 KiB unless the post
   * asks for more), else its first `readLimit` bytes. Enough for error messages by default; a drain
   * that decides by the answer (Elasticsearch) asks for all of it.
   */
  readonly body: string
  /** The same body, as bytes: for answers that are not text (OTLP's protobuf). */
  readonly bytes: Uint8Array
  /** Whether `body` is the whole answer (false: the answer was longer than `readLimit`). */
  readonly complete: boolean
}

export interface PostOptions {
  /** The most bytes of the answer kept (default 4 KiB). Reading stops soon after it. */
  readonly readLimit?: number | undefined
}

export interface Client {
  readonly post: (
    body: string | Uint8Array,
    headers: Readonly<Record<string, string>>,
    options?: PostOptions
  ) => Effect.Effect<Response, TransportError>
}

/** The URL without user info, and the Basic Authorization header that user info stood for. */
export const splitCredentials = (url: string): { readonly url: string; readonly authorization: string | undefined } => {
  const parsed = new URL(url)
  if (parsed.username === "" && parsed.password === "") return { url, authorization: undefined }
  const user = decodeComponent(parsed.username)
  const password = decodeComponent(parsed.password)
  parsed.username = ""
  parsed.password = ""
  return { url: parsed.href, authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` }
}

/** What is kept of an answer unless a post asks for more: enough for an error message. */
export const DEFAULT_READ_LIMIT = 4096

/**
 * An answer beyond what is kept is still read, and thrown away, up to this size, so its connection
 * can carry the next request; a longer one is left unread and its connection closed.
 */
const DISCARD_LIMIT = 1024 * 1024

/** Reads an answer's body: `limit` bytes kept, the rest read up to DISCARD_LIMIT and dropped. */
const readBody = (response: HttpClientResponse.HttpClientResponse, limit: number) => {
  const kept: Array<Uint8Array> = []
  let keptBytes = 0
  let total = 0
  const stopAt = Math.max(limit, DISCARD_LIMIT)
  return response.stream.pipe(
    Stream.runForEachWhile((chunk) =>
      Effect.sync(() => {
        total += chunk.length
        if (keptBytes < limit) {
          const part = chunk.length <= limit - keptBytes ? chunk : chunk.subarray(0, limit - keptBytes)
          kept.push(part)
          keptBytes += part.length
        }
        return total <= stopAt
      })
    ),
    Effect.map(() => {
      const bytes = Buffer.concat(kept)
      return { body: bytes.toString("utf8"), bytes, complete: total <= limit }
    })
  )
}

/**
 * An undici Agent (a connection pool), closed with the scope; undici is loaded when the first HTTP
 * drain opens. Made by undici.ts rather than `NodeHttpClient.makeDispatcherOptions`, which loads
 * undici through a module re-exporting it (`export * from "undici"`): once bundled, that module
 * exports nothing but `default`, and every HTTP drain of the bundle died making its Agent.
 */
const agent = (options: Undici.Agent.Options) =>
  Effect.acquireRelease(
    Effect.map(Effect.promise(() => import("./undici.ts")), (undici) => undici.makeAgent(options)),
    (dispatcher) => Effect.promise(() => dispatcher.destroy())
  )

export const client = (options: ClientOptions): Effect.Effect<Client, never, Scope.Scope> =>
  Effect.gen(function*() {
    const dispatcher = yield* agent({
      connect: {
        rejectUnauthorized: options.tls.insecure !== true,
        ...(options.tls.ca === undefined ? {} : { ca: trustedWith(options.tls.ca) })
      }
    })
    const http = yield* NodeHttpClient.makeUndici.pipe(Effect.provideService(NodeHttpClient.Dispatcher, dispatcher))
    const { authorization, url } = splitCredentials(options.url)
    const fail = (reason: TransportError["reason"], detail: string) =>
      new TransportError({ reason, address: options.display, detail })

    return {
      post: (body, headers, postOptions) => {
        const request = HttpClientRequest.post(url).pipe(
          HttpClientRequest.setHeaders(authorization === undefined ? headers : { authorization, ...headers }),
          typeof body === "string"
            ? HttpClientRequest.bodyText(body, headers["content-type"])
            : HttpClientRequest.bodyUint8Array(body, headers["content-type"])
        )
        return http.execute(request).pipe(
          Effect.flatMap((response) =>
            readBody(response, postOptions?.readLimit ?? DEFAULT_READ_LIMIT).pipe(
              // The exchange did not complete: as far as the protocol can tell, nothing was received.
              Effect.mapError((error) =>
                fail("Closed", `the answer broke off: ${describeCause(error.reason.cause ?? error.reason._tag)}`)
              ),
              Effect.map((read): Response => ({ status: response.status, headers: response.headers, ...read }))
            )
          ),
          Effect.scoped,
          Effect.timeoutOrElse({
            duration: options.timeout,
            orElse: () => Effect.fail(fail("Timeout", `no answer in ${Duration.format(options.timeout)}`))
          }),
          Effect.catchTag("HttpClientError", (error) =>
            Effect.fail(fail("Connect", describeCause(error.reason.cause ?? error.reason._tag))))
        )
      }
    } satisfies Client
  })
