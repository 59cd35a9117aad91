/**
 * HTTP(S) POSTs for drains. Each client has its own connection pool (an undici Agent) carrying its
 * drain's TLS settings: the system roots plus an extra CA, or no verification with `insecure`.
 *
 * Credentials in the URL (`https://user:pass@host/`) are taken out of it and sent as a Basic
 * Authorization header, and no message here ever contains the URL itself: errors name the drain
 * by its redacted form, which the caller passes in.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Duration, Effect, Scope } from "effect"
import { HttpClientRequest } from "effect/http"
import { Buffer } from "node:buffer"
import type * as Undici from "undici"
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
  /** The start of the body (at most 4 KiB), for error messages and small replies. */
  readonly body: string
  /** The same start of the body, as bytes: for answers that are not text (OTLP's protobuf). */
  readonly bytes: Uint8Array
}

export interface Client {
  readonly post: (
    body: string | Uint8Array,
    headers: Readonly<Record<string, string>>
  ) => Effect.Effect<Response, TransportError>
}

/** The URL without user info, and the Basic Authorization header that user info stood for. */
export const splitCredentials = (url: string): { readonly url: string; readonly authorization: string | undefined } => {
  const parsed = new URL(url)
  if (parsed.username === "" && parsed.password === "") return { url, authorization: undefined }
  const user = decodeURIComponent(parsed.username)
  const password = decodeURIComponent(parsed.password)
  parsed.username = ""
  parsed.password = ""
  return { url: parsed.href, authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` }
}

const MAX_BODY_SHOWN = 4096

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
      post: (body, headers) => {
        const request = HttpClientRequest.post(url).pipe(
          HttpClientRequest.setHeaders(authorization === undefined ? headers : { authorization, ...headers }),
          typeof body === "string"
            ? HttpClientRequest.bodyText(body, headers["content-type"])
            : HttpClientRequest.bodyUint8Array(body, headers["content-type"])
        )
        return http.execute(request).pipe(
          Effect.flatMap((response) =>
            Effect.map(
              Effect.orElseSucceed(response.arrayBuffer, () => new ArrayBuffer(0)),
              (buffer): Response => {
                const bytes = new Uint8Array(buffer, 0, Math.min(buffer.byteLength, MAX_BODY_SHOWN))
                return { status: response.status, headers: response.headers, body: Buffer.from(bytes).toString("utf8"), bytes }
              }
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
