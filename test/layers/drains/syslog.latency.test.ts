/**
 * A TCP syslog receiver that closes its connection while lines are still on their way to it, over
 * a link with latency (a LAN, or loopback when the kernel defers its work under load). Its kernel
 * closes with a FIN — it had read all that had arrived — and resets the connection when the lines
 * still on their way arrive after. Those lines were never read: the drain must write them again.
 *
 * The link is played by a stand-in that is the receiver: what logtrain writes arrives `LATENCY`
 * later (or, if the receiver has closed by then, is answered with a reset, `LATENCY` later again),
 * and the receiver's FIN reaches logtrain `LATENCY` after it closes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as Net from "node:net"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import { FrameDecoder } from "../../../src/domain/syslog/Framing.ts"
import * as Syslog from "../../../src/domain/syslog/Syslog.ts"
import * as DrainsHarness from "../../helpers/DrainsHarness.ts"
import { freePort } from "../../helpers/ports.ts"

const LATENCY = 100

/** The receiver at the far end of a link with LATENCY ms each way. */
const farReceiver = async (port: number) => {
  const lines: Array<string> = []
  const open = new Set<{ readonly socket: Net.Socket; closed: boolean }>()
  const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
    const connection = { socket, closed: false }
    open.add(connection)
    const decoder = new FrameDecoder({ maxFrameBytes: 1 << 20 })
    socket.on("data", (chunk) => {
      setTimeout(() => {
        // Arrived after the receiver closed: its kernel resets the connection (the reset takes the link's time back).
        if (connection.closed) setTimeout(() => socket.resetAndDestroy(), LATENCY)
        else lines.push(...decoder.decode(chunk))
      }, LATENCY)
    })
    // The sender closing (FIN, after what it wrote): the receiver closes its side once it has read it all.
    socket.on("end", () => setTimeout(() => socket.end(), LATENCY))
    socket.on("error", () => {})
    socket.on("close", () => open.delete(connection))
  })
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve))
  return {
    lines,
    /** The receiver closes every connection now, having read all that had arrived: its FIN reaches the sender LATENCY later. */
    closeConnections: () => {
      for (const connection of open) {
        connection.closed = true
        setTimeout(() => connection.socket.end(), LATENCY)
      }
    },
    stop: () => new Promise<void>((resolve) => {
      for (const connection of open) connection.socket.destroy()
      server.close(() => resolve())
    })
  }
}

const packet = (n: number) => LogPacket.make({ time: new Date(0), hostname: "app.shop", tag: "web", message: `line ${n}` })

describe("syslog+tcp drain: a receiver closing while lines are on their way", () => {
  it.live("lines that reach it after it closed (reset) are written again: none lost", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(() => freePort())
      const receiver = yield* Effect.promise(() => farReceiver(port))
      const { close, drains } = yield* DrainsHarness.open({ ...DrainsHarness.testSettings, batchSize: 5 })
      const drain = yield* drains.open(`syslog+tcp://127.0.0.1:${port}`)
      const count = 200
      // 200 lines over 1 s; the receiver closes half way, with ~20 lines on their way.
      for (let n = 0; n < count; n++) {
        if (n === count / 2) receiver.closeConnections()
        assert.isTrue(drain.offer(packet(n)))
        yield* Effect.sleep(Duration.millis(5))
      }
      const received = () => new Set(receiver.lines.map((line) => (Syslog.parse(line, new Date()) as LogPacket.LogPacket).message))
      const missing = () => Array.from({ length: count }, (_, n) => `line ${n}`).filter((line) => !received().has(line))
      yield* DrainsHarness.waitUntil(Effect.sync(() => missing().length === 0), "10 seconds", () =>
        `${missing().length} of ${count} lines never arrived (${missing().slice(0, 12).join(", ")}); ` +
        `the drain counts ${drain.stats.sent} sent, ${drain.stats.resent} written again`)
      assert.isAbove(drain.stats.resent, 0, "what was reset was written again, and counted")
      yield* close
      yield* Effect.promise(() => receiver.stop())
    }), 30_000)
})
