/** A syslog receiver over UDP for tests: keeps each datagram's text; can be closed and bound again. */
import * as Dgram from "node:dgram"

export interface UdpReceiver {
  readonly port: number
  readonly datagrams: Array<string>
  stop(): Promise<void>
  start(): Promise<void>
}

export const listen = async (port: number): Promise<UdpReceiver> => {
  const datagrams: Array<string> = []
  let socket: Dgram.Socket | undefined
  const receiver: UdpReceiver = {
    port,
    datagrams,
    start: () =>
      new Promise((resolve, reject) => {
        const s = Dgram.createSocket("udp4")
        s.on("message", (message) => datagrams.push(message.toString("utf8")))
        s.once("error", reject)
        s.bind(port, "127.0.0.1", () => resolve())
        socket = s
      }),
    stop: () =>
      new Promise((resolve) => {
        if (socket === undefined) return resolve()
        socket.close(() => resolve())
        socket = undefined
      })
  }
  await receiver.start()
  return receiver
}
