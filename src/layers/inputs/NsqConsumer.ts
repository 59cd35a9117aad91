/**
 * deis/logger's aggregator (`AGGREGATOR_TYPE=nsq`): consumes the topic `NSQ_TOPIC` (logs) on the
 * channel `NSQ_CHANNEL` (consume) of the nsqd at `DEIS_NSQD_SERVICE_HOST:
 * DEIS_NSQD_SERVICE_PORT_TRANSPORT`, over NSQ's TCP protocol (V2), and stores each message's line
 * (domain/DeisMessage.ts) in the recent-logs buffer — and hands it to open live tails.
 *
 * Up to `NSQ_HANDLER_COUNT` messages are in flight (RDY); they are handled in the order they
 * came, and each is finished (FIN) once stored. A message with no line (not JSON, no app) is
 * finished too, and counted: requeueing it, as deis/logger did, would bring it back forever. A
 * storage error requeues it (REQ). A lost connection is made again, backing off up to 30 s.
 * Loaded only when `AGGREGATOR_TYPE=nsq`.
 */
import { Duration, Effect, Layer, Queue, Schedule } from "effect"
import * as Net from "node:net"
import * as DeisMessage from "../../domain/DeisMessage.ts"
import * as Log from "../Log.ts"
import { Readiness } from "../Readiness.ts"
import * as Telemetry from "../Telemetry.ts"
import { LiveTails } from "../tails/LiveTails.ts"
import { RecentLogs } from "../storage/RecentLogs.ts"

export interface Options {
  readonly host: string
  readonly port: number
  readonly topic: string
  readonly channel: string
  readonly handlerCount: number
}

const FRAME_RESPONSE = 0
const FRAME_ERROR = 1
const FRAME_MESSAGE = 2

interface Message {
  readonly id: string
  readonly attempts: number
  readonly body: Buffer
}

type Event =
  | { readonly _tag: "message"; readonly message: Message }
  | { readonly _tag: "closed"; readonly reason: string }

/** Splits the nsqd byte stream into frames: [size:4][type:4][data:size-4]. */
export class FrameReader {
  private buffered: Buffer = Buffer.alloc(0)

  push(chunk: Buffer): Array<{ readonly type: number; readonly data: Buffer }> {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    const frames: Array<{ type: number; data: Buffer }> = []
    while (this.buffered.length >= 8) {
      const size = this.buffered.readUInt32BE(0)
      if (this.buffered.length < 4 + size) break
      frames.push({ type: this.buffered.readUInt32BE(4), data: this.buffered.subarray(8, 4 + size) })
      this.buffered = this.buffered.subarray(4 + size)
    }
    return frames
  }
}

/** A message frame's data: [timestamp:8][attempts:2][id:16][body]. */
export const readMessage = (data: Buffer): Message => ({
  attempts: data.readUInt16BE(8),
  id: data.subarray(10, 26).toString("ascii"),
  body: data.subarray(26)
})

export const layer = (options: Options) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const recent = yield* RecentLogs
    const tails = yield* LiveTails
    const check = yield* (yield* Readiness).register("aggregator:nsq")
    const stats = { messages: 0, unusable: 0, requeued: 0, connects: 0 }
    const labels = { topic: options.topic, channel: options.channel }
    yield* Telemetry.counter("logtail_nsq_messages_total", "NSQ messages stored.", labels, () => stats.messages)
    yield* Telemetry.counter("logtail_nsq_unusable_total", "NSQ messages with no line to store, or whose line the store refused for good (finished, not requeued).", labels, () =>
      stats.unusable)
    yield* Telemetry.counter("logtail_nsq_requeued_total", "NSQ messages requeued after a storage error.", labels, () => stats.requeued)
    let lastUnusable = ""
    yield* Effect.suspend(() =>
      stats.unusable === 0 ? Effect.void : Log.warn("NSQ messages with no line", { total: stats.unusable, example: lastUnusable })
    ).pipe(Effect.repeat(Schedule.spaced("30 seconds")), Effect.forkScoped)

    /** One connection: subscribe, then handle messages until it closes (fails with the reason). */
    const session = Effect.gen(function*() {
      const events = yield* Queue.unbounded<Event>()
      const socket = yield* Effect.acquireRelease(
        Effect.callback<Net.Socket, Error>((resume) => {
          const s = Net.createConnection({ host: options.host, port: options.port })
          s.once("connect", () => resume(Effect.succeed(s)))
          s.once("error", (error) => resume(Effect.fail(error)))
        }),
        (s) => Effect.sync(() => s.destroy())
      )
      stats.connects++
      const send = (command: string) => socket.write(command)
      const reader = new FrameReader()
      let subscribed = false
      socket.on("data", (chunk: Buffer) => {
        for (const frame of reader.push(chunk)) {
          if (frame.type === FRAME_MESSAGE) {
            Queue.offerUnsafe(events, { _tag: "message", message: readMessage(frame.data) })
          } else if (frame.type === FRAME_RESPONSE) {
            const text = frame.data.toString()
            if (text === "_heartbeat_") send("NOP\n")
            else if (text === "OK" && !subscribed) {
              subscribed = true
              send(`RDY ${options.handlerCount}\n`)
            }
          } else if (frame.type === FRAME_ERROR) {
            Queue.offerUnsafe(events, { _tag: "closed", reason: `nsqd: ${frame.data.toString()}` })
          }
        }
      })
      socket.on("error", (error) => Queue.offerUnsafe(events, { _tag: "closed", reason: error.message }))
      socket.on("close", () => Queue.offerUnsafe(events, { _tag: "closed", reason: "connection closed" }))
      socket.setNoDelay(true)
      send("  V2")
      send(`SUB ${options.topic} ${options.channel}\n`)
      yield* Log.info("consuming NSQ", { nsqd: `${options.host}:${options.port}`, topic: options.topic, channel: options.channel })
      yield* check.ready

      while (true) {
        const event = yield* Queue.take(events)
        if (event._tag === "closed") return yield* Effect.fail(new Error(event.reason))
        const { message } = event
        const parsed = DeisMessage.parse(message.body.toString("utf8"))
        if (parsed instanceof DeisMessage.DeisMessageError) {
          stats.unusable++
          lastUnusable = parsed.message
          send(`FIN ${message.id}\n`)
          continue
        }
        const stored = yield* Effect.result(recent.write([[parsed.app, parsed.line]]))
        if (stored._tag === "Failure") {
          stats.requeued++
          yield* Log.warn("recent logs: write failed, message requeued", { error: stored.failure.message })
          send(`REQ ${message.id} ${Math.min(60_000, 1000 * message.attempts)}\n`)
          continue
        }
        // A key the store can never write: the line cannot be stored however often it comes again.
        const refused = stored.success.refused[0]
        if (refused !== undefined) {
          stats.unusable++
          lastUnusable = `the store refused it (${refused.reason})`
        }
        tails.publish([{ time: parsed.time, hostname: parsed.app, tag: parsed.tag, message: parsed.message, severity: 6, facility: 1 }])
        stats.messages++
        send(`FIN ${message.id}\n`)
      }
    }).pipe(Effect.scoped)

    yield* session.pipe(
      Effect.tapError((error) => Log.warn("NSQ connection lost; connecting again", { error: error.message })),
      Effect.retry(Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced(Duration.seconds(30))])),
      Effect.forkScoped
    )
  }))
