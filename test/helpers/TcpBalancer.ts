/**
 * A stand-in for a Kubernetes Service in front of several replicas: it listens on one address and
 * hands each connection to the next backend in turn (skipping those that refuse it), as kube-proxy
 * spreads connections over a Service's endpoints.
 */
import * as Net from "node:net"

export interface TcpBalancer {
  readonly host: string
  readonly port: number
  /** Backends that took a connection, in order. */
  readonly picked: Array<string>
  stop(): Promise<void>
}

export const listen = (host: string, port: number, backends: ReadonlyArray<{ readonly host: string; readonly port: number }>) =>
  new Promise<TcpBalancer>((resolve, reject) => {
    let next = 0
    const picked: Array<string> = []
    const sockets = new Set<Net.Socket>()
    const connect = (client: Net.Socket, tries: number) => {
      if (tries >= backends.length || client.destroyed) return void client.destroy()
      const backend = backends[next++ % backends.length]!
      const upstream = Net.createConnection(backend)
      let connected = false
      upstream.once("connect", () => {
        connected = true
        sockets.add(upstream)
        picked.push(`${backend.host}:${backend.port}`)
        client.pipe(upstream)
        upstream.pipe(client)
        client.resume()
        upstream.once("close", () => {
          sockets.delete(upstream)
          client.destroy()
        })
        client.once("close", () => upstream.destroy())
      })
      // A backend that refuses: the next one.
      upstream.on("error", () => {
        if (!connected) connect(client, tries + 1)
        else client.destroy()
      })
    }
    const server = Net.createServer({ pauseOnConnect: true }, (client) => {
      sockets.add(client)
      client.once("close", () => sockets.delete(client))
      client.on("error", () => client.destroy())
      connect(client, 0)
    })
    server.once("error", reject)
    server.listen(port, host, () =>
      resolve({
        host,
        port,
        picked,
        stop: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy()
            server.close(() => done())
          })
      })
    )
  })
