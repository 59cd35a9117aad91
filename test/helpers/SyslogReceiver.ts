/**
 * A syslog receiver over TCP (or TLS) for tests: it keeps every frame it is sent (octet-counted or
 * newline-framed, as the FrameDecoder reads them), parsed, and can be stopped and started again
 * on the same port to play a receiver that goes down.
 */
import * as Net from "node:net"
import * as Tls from "node:tls"
import type { LogPacket } from "../../src/domain/LogPacket.ts"
import { FrameDecoder } from "../../src/domain/syslog/Framing.ts"
import * as Syslog from "../../src/domain/syslog/Syslog.ts"

export interface SyslogReceiver {
  readonly port: number
  readonly lines: Array<string>
  readonly packets: () => Array<LogPacket>
  stop(): Promise<void>
  start(): Promise<void>
  /** Resolves once `n` lines have arrived, or rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs?: number): Promise<void>
}

export const listen = async (
  port: number,
  options: { readonly tls?: Tls.TlsOptions } = {}
): Promise<SyslogReceiver> => {
  const lines: Array<string> = []
  const sockets = new Set<Net.Socket>()
  let server: Net.Server | undefined
  const onConnection = (socket: Net.Socket) => {
    sockets.add(socket)
    const decoder = new FrameDecoder({ maxFrameBytes: 1 << 20 })
    socket.on("data", (chunk) => lines.push(...decoder.decode(chunk)))
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => {})
  }
  const receiver: SyslogReceiver = {
    port,
    lines,
    packets: () => lines.map((line) => Syslog.parse(line, new Date())).filter((p): p is LogPacket => !Syslog.isParseError(p)),
    start: () =>
      new Promise((resolve, reject) => {
        server = options.tls === undefined
          ? Net.createServer(onConnection)
          : Tls.createServer(options.tls, onConnection)
        server.once("error", reject)
        server.listen(port, "127.0.0.1", () => resolve())
      }),
    stop: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy()
        if (server === undefined) return resolve()
        server.close(() => resolve())
        server = undefined
      }),
    waitFor: async (n, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs
      while (lines.length < n) {
        if (Date.now() > deadline) throw new Error(`expected ${n} lines, got ${lines.length}`)
        await new Promise((r) => setTimeout(r, 20))
      }
    }
  }
  await receiver.start()
  return receiver
}
