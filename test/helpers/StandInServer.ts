/**
 * The HTTP(S) server under every HTTP stand-in (Elasticsearch, Loki, OTLP, plain receivers): it
 * listens on 127.0.0.1, on a given port or any free one, and can be taken down (every connection
 * cut, as a receiver that dies) and started again on the same port.
 */
import * as Http from "node:http"
import * as Https from "node:https"
import type { AddressInfo } from "node:net"

export interface StandInServer {
  /** The port, once started (then kept across restarts). */
  readonly port: number
  start(): Promise<void>
  stop(): Promise<void>
}

export const make = (
  handler: Http.RequestListener,
  options: { readonly port?: number | undefined; readonly tls?: Https.ServerOptions | undefined } = {}
): StandInServer => {
  let server: Http.Server | undefined
  let port = options.port ?? 0
  return {
    get port() {
      return port
    },
    start: () =>
      new Promise((resolve, reject) => {
        server = options.tls === undefined ? Http.createServer(handler) : Https.createServer(options.tls, handler)
        // Short, so a stand-in taken down does not wait on idle keep-alive connections.
        server.keepAliveTimeout = 200
        server.once("error", reject)
        server.listen(port, "127.0.0.1", () => {
          port = (server!.address() as AddressInfo).port
          resolve()
        })
      }),
    stop: () =>
      new Promise((resolve) => {
        if (server === undefined) return resolve()
        server.closeAllConnections()
        server.close(() => resolve())
        server = undefined
      })
  }
}
