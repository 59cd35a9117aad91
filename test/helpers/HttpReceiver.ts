/**
 * An HTTP(S) receiver for drain tests: keeps every request (headers and body), and can be taken
 * down (closed), made to answer 503 (overloaded) or 400 (refusing the data for good), and made to
 * answer with a body of the test's (`answer`), e.g. one echoing the request as some receivers do.
 */
import * as Http from "node:http"
import * as StandInServer from "./StandInServer.ts"

export interface ReceivedRequest {
  readonly path: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
}

export interface HttpReceiver {
  readonly port: number
  /** Requests answered 2xx. */
  readonly requests: Array<ReceivedRequest>
  /** Every request, with the status it got. */
  readonly attempts: Array<ReceivedRequest & { readonly status: number }>
  /** The status to answer with (200 unless told otherwise). */
  status: number
  /** The body to answer with, made from the request; unset: a short text. */
  answer: ((request: ReceivedRequest & { readonly method: string; readonly rawHeaders: ReadonlyArray<string> }) => string) | undefined
  stop(): Promise<void>
  start(): Promise<void>
}

export const listen = async (options: { port?: number; tls?: { cert: string; key: string } } = {}): Promise<HttpReceiver> => {
  const requests: Array<ReceivedRequest> = []
  const attempts: Array<ReceivedRequest & { readonly status: number }> = []
  const handler: Http.RequestListener = (req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      const status = receiver.status
      const request = { path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") }
      attempts.push({ ...request, status })
      if (status >= 200 && status < 300) requests.push(request)
      res.writeHead(status, { "content-type": "text/plain" })
      res.end(
        receiver.answer?.({ ...request, method: req.method ?? "", rawHeaders: req.rawHeaders }) ??
          (status === 200 ? "ok" : `answering ${status} on purpose`)
      )
    })
  }
  const http = StandInServer.make(handler, { port: options.port, tls: options.tls })
  const receiver: HttpReceiver = {
    get port() {
      return http.port
    },
    requests,
    attempts,
    status: 200,
    answer: undefined,
    start: http.start,
    stop: http.stop
  }
  await receiver.start()
  return receiver
}
