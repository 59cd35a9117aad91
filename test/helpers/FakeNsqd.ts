/**
 * A minimal nsqd for tests, speaking NSQ's TCP protocol (V2) as nsqd does for a consumer: the
 * `  V2` magic, `SUB <topic> <channel>` (answered `OK`), `RDY <n>`, then message frames (at most
 * n in flight), `FIN <id>`, `REQ <id> <ms>` (delivered again, attempts + 1), `NOP`, heartbeats.
 * Frames: [size:4][type:4][data] — type 0 response, 1 error, 2 message; message data:
 * [timestamp ns:8][attempts:2][id:16 ASCII][body].
 */
import * as Net from "node:net"

export interface FakeNsqd {
  readonly port: number
  /** Commands received, in order (message bodies of IDENTIFY left out). */
  readonly commands: Array<string>
  readonly finished: Array<string>
  readonly requeued: Array<string>
  publish(body: string): string
  heartbeat(): void
  /** Cuts the consumer's connection (what is in flight is delivered again on the next). */
  disconnect(): void
  connections(): number
  stop(): Promise<void>
}

const frame = (type: number, data: Buffer) => {
  const header = Buffer.alloc(8)
  header.writeUInt32BE(data.length + 4, 0)
  header.writeUInt32BE(type, 4)
  return Buffer.concat([header, data])
}

export const listen = async (topic: string, channel: string): Promise<FakeNsqd> => {
  const commands: Array<string> = []
  const finished: Array<string> = []
  const requeued: Array<string> = []
  const queue: Array<{ id: string; body: string; attempts: number }> = []
  let inFlight = new Map<string, { id: string; body: string; attempts: number }>()
  let consumer: { socket: Net.Socket; rdy: number } | undefined
  let next = 0
  let connections = 0

  const deliver = () => {
    if (consumer === undefined) return
    while (queue.length > 0 && inFlight.size < consumer.rdy) {
      const message = queue.shift()!
      message.attempts++
      inFlight.set(message.id, message)
      const data = Buffer.alloc(26 + Buffer.byteLength(message.body))
      data.writeBigUInt64BE(BigInt(Date.now()) * 1_000_000n, 0)
      data.writeUInt16BE(message.attempts, 8)
      data.write(message.id, 10, "ascii")
      data.write(message.body, 26, "utf8")
      consumer.socket.write(frame(2, data))
    }
  }

  const server = Net.createServer((socket) => {
    connections++
    let buffered = Buffer.alloc(0)
    let magic = false
    let subscribed = false
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      if (!magic) {
        if (buffered.length < 4) return
        if (buffered.subarray(0, 4).toString() !== "  V2") {
          socket.end(frame(1, Buffer.from("E_BAD_PROTOCOL")))
          return
        }
        magic = true
        buffered = buffered.subarray(4)
      }
      let newline: number
      while ((newline = buffered.indexOf(0x0a)) !== -1) {
        const line = buffered.subarray(0, newline).toString()
        const [command, ...args] = line.split(" ")
        if (command === "IDENTIFY") {
          if (buffered.length < newline + 5) return
          const size = buffered.readUInt32BE(newline + 1)
          if (buffered.length < newline + 5 + size) return
          buffered = buffered.subarray(newline + 5 + size)
          commands.push("IDENTIFY")
          socket.write(frame(0, Buffer.from("OK")))
          continue
        }
        buffered = buffered.subarray(newline + 1)
        commands.push(line)
        if (command === "SUB") {
          if (args[0] !== topic || args[1] !== channel) {
            socket.end(frame(1, Buffer.from(`E_BAD_TOPIC unknown ${args.join(" ")}`)))
            return
          }
          subscribed = true
          consumer = { socket, rdy: 0 }
          socket.write(frame(0, Buffer.from("OK")))
        } else if (command === "RDY" && subscribed) {
          consumer = { socket, rdy: Number(args[0]) }
          deliver()
        } else if (command === "FIN") {
          if (inFlight.delete(args[0]!)) finished.push(args[0]!)
          deliver()
        } else if (command === "REQ") {
          const message = inFlight.get(args[0]!)
          if (message !== undefined) {
            inFlight.delete(args[0]!)
            requeued.push(args[0]!)
            queue.push(message)
          }
          deliver()
        } else if (command === "CLS") {
          socket.write(frame(0, Buffer.from("CLOSE_WAIT")))
        }
      }
    })
    socket.on("close", () => {
      if (consumer?.socket === socket) {
        consumer = undefined
        // What was in flight comes again, first.
        queue.unshift(...inFlight.values())
        inFlight = new Map()
      }
    })
    socket.on("error", () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as Net.AddressInfo).port
  return {
    port,
    commands,
    finished,
    requeued,
    publish: (body) => {
      const id = (next++).toString(16).padStart(16, "0")
      queue.push({ id, body, attempts: 0 })
      deliver()
      return id
    },
    heartbeat: () => consumer?.socket.write(frame(0, Buffer.from("_heartbeat_"))),
    disconnect: () => consumer?.socket.destroy(),
    connections: () => connections,
    stop: () =>
      new Promise<void>((resolve) => {
        consumer?.socket.destroy()
        server.close(() => resolve())
      })
  }
}
