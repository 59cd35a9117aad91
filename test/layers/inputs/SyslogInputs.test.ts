import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Stream } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as Dgram from "node:dgram"
import * as Net from "node:net"
import type { LogPacket } from "../../../src/domain/LogPacket.ts"
import { Ingest } from "../../../src/layers/routing/Ingest.ts"
import * as SyslogTcp from "../../../src/layers/inputs/SyslogTcp.ts"
import * as SyslogUdp from "../../../src/layers/inputs/SyslogUdp.ts"
import { Readiness } from "../../../src/layers/Readiness.ts"
import { freePort } from "../../helpers/ports.ts"

const octet = (line: string) => `${Buffer.byteLength(line)} ${line}`

/** Runs an input on top of an Ingest, collecting what reaches Ingest until `n` packets have. */
const collect = <E>(input: Layer.Layer<never, E, Ingest | Readiness>, n: number, send: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const ingest = yield* Ingest
    const taking = yield* ingest.packets.pipe(Stream.take(n), Stream.runCollect, Effect.forkChild)
    yield* send
    const packets: ReadonlyArray<LogPacket> = yield* Fiber.join(taking)
    const report = yield* (yield* Readiness).report
    // Read while the input runs: its series go away with it.
    const metrics = yield* PrometheusMetrics.format()
    return { packets, report, metrics }
  }).pipe(Effect.provide(Layer.provideMerge(input, Layer.mergeAll(Ingest.layer({ capacity: 100 }), Readiness.layer))))

const metricValue = (text: string, name: string, input: string) =>
  Number(new RegExp(`^${name}\\{input="${input}"[^}]*\\} (\\d+)`, "m").exec(text)?.[1])

describe("syslog inputs", () => {
  it.live("TCP: reads a stream of mixed framings, cut anywhere, and counts malformed and oversize lines", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const stream = [
        octet("<14>1 2024-01-01T00:00:00.000Z h a - - - one"),
        "<14>Jan  1 00:00:00 h a: two\n",
        "garbage without a priority\n",
        `<14>1 - h a - - - ${"x".repeat(2000)}\n`,
        octet("<14>1 - h a - - - three")
      ].join("")
      const send = Effect.promise(() =>
        new Promise<void>((resolve) => {
          const socket = Net.createConnection({ host: "127.0.0.1", port }, async () => {
            for (let i = 0; i < stream.length; i += 7) {
              socket.write(stream.slice(i, i + 7))
              await new Promise((r) => setTimeout(r, 0))
            }
            socket.end(resolve)
          })
        })
      )
      const { metrics, packets, report } = yield* collect(
        SyslogTcp.layer({ host: "127.0.0.1", port, maxMessageBytes: 1024 }),
        4,
        send
      )
      assert.deepStrictEqual(packets.map((p) => p.message.slice(0, 10)), ["one", "two", "x".repeat(10), "three"])
      assert.strictEqual(packets[2]!.message.length, 1024 - "<14>1 - h a - - - ".length)
      assert.isTrue(report.ready)
      assert.strictEqual(metricValue(metrics, "logtrain_input_records_total", "syslog_tcp"), 4)
      assert.strictEqual(Number(/logtrain_input_errors_total\{input="syslog_tcp",reason="malformed"\} (\d+)/.exec(metrics)?.[1]), 1)
      assert.strictEqual(Number(/logtrain_input_errors_total\{input="syslog_tcp",reason="truncated"\} (\d+)/.exec(metrics)?.[1]), 1)
    }))

  it.live("UDP: one message per datagram, records counted once each, the sender's address for 3164 lines without a hostname", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const send = Effect.promise(() =>
        new Promise<void>((resolve) => {
          const socket = Dgram.createSocket("udp4")
          let left = 50
          for (let i = 0; i < 50; i++) {
            socket.send(`<13>Jan  1 00:00:00 app: datagram ${i}\n`, port, "127.0.0.1", () => {
              if (--left === 0) socket.close(() => resolve())
            })
          }
        })
      )
      const { metrics, packets } = yield* collect(SyslogUdp.layer({ host: "127.0.0.1", port, maxMessageBytes: 1024 }), 50, send)
      assert.deepStrictEqual(packets.map((p) => p.message).toSorted(), Array.from({ length: 50 }, (_, i) => `datagram ${i}`).toSorted())
      assert.isTrue(packets.every((p) => p.hostname === "127.0.0.1" && p.tag === "app"))
      assert.strictEqual(metricValue(metrics, "logtrain_input_records_total", "syslog_udp"), 50)
    }))

  it.live("UDP: cuts a datagram longer than SYSLOG_MAX_MESSAGE_SIZE on a UTF-8 boundary, as TCP does, and counts it", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      // The header is 21 bytes: the limit (480) falls in the middle of an "é" (2 bytes each).
      const head = "<14>1 - host app - - "
      const datagram = `${head}${"é".repeat(300)}`
      const send = Effect.promise(() =>
        new Promise<void>((resolve) => {
          const socket = Dgram.createSocket("udp4")
          socket.send(datagram, port, "127.0.0.1", () => socket.close(() => resolve()))
        })
      )
      const { metrics, packets } = yield* collect(SyslogUdp.layer({ host: "127.0.0.1", port, maxMessageBytes: 480 }), 1, send)
      const message = packets[0]!.message
      assert.isFalse(message.includes("\ufffd"), "no replacement character at the cut")
      assert.isAtMost(Buffer.byteLength(packets[0]!.rfc5424 ?? `${head}${message}`), 480)
      assert.strictEqual(message, "é".repeat(Math.floor((480 - Buffer.byteLength(head) - 1) / 2)))
      assert.strictEqual(Number(/logtrain_input_errors_total\{input="syslog_udp",reason="truncated"\} (\d+)/.exec(metrics)?.[1]), 1)
    }))
})
