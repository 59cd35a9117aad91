/**
 * HTTP_MAX_BODY_MEMORY holds every HTTP input's request bodies at once — the events input's and
 * OTLP's alike: a request whose body would not fit beside one still being read waits, unread,
 * until that one is done, and the wait is counted (`reason="body_memory_wait"`).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Net from "node:net"
import { metric } from "../helpers/LogtailClient.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import { freePorts } from "../helpers/ports.ts"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const BUDGET = 64 * 1024
/** Each body declares more than half the budget: two cannot be held at once. */
const DECLARED = 40 * 1024

/** A POST whose body comes only when `finish` is called; resolves to the status line once answered. */
const post = (port: number, path: string, contentType: string, body: Buffer) => {
  const socket = Net.createConnection({ host: "127.0.0.1", port })
  socket.write(`POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: ${contentType}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`)
  let answer = ""
  const answered = new Promise<string>((resolve) => {
    socket.on("data", (chunk) => {
      answer += chunk.toString("latin1")
    })
    socket.on("close", () => resolve(answer.split("\r\n")[0] ?? ""))
    socket.on("error", () => resolve(answer.split("\r\n")[0] ?? ""))
  })
  return {
    get answered() {
      return answer !== ""
    },
    /** The first bytes of the body only: the request holds its share while it is read. */
    start: () => socket.write(body.subarray(0, 10)),
    finish: () => socket.write(body.subarray(10)),
    result: answered
  }
}

/** A body of about `size` bytes: `shell` around a message padded to fit. */
const padded = (shell: (message: string) => string, size: number) => Buffer.from(shell("x".repeat(size - shell("").length)))

const otlpShell = (message: string) =>
  JSON.stringify({ resourceLogs: [{ resource: { attributes: [{ key: "service.name", value: { stringValue: "app" } }] }, scopeLogs: [{ logRecords: [{ body: { stringValue: message } }] }] }] })

/** An OTLP/JSON logs request of about `size` bytes (one record). */
const otlpJson = (size: number) => padded(otlpShell, size)

const eventsShell = (message: string) => JSON.stringify([{ hostname: "app", message }])
const eventsJson = (size: number) => padded(eventsShell, size)

describe("HTTP_MAX_BODY_MEMORY across the HTTP inputs", () => {
  for (const input of [
    { name: "OTLP", path: "/v1/logs", contentType: "application/json", body: otlpJson },
    { name: "events", path: "/events", contentType: "application/json", body: eventsJson }
  ]) {
    it(`${input.name}: a body that does not fit beside one being read waits for it, counted`, async () => {
      const [http] = await freePorts(1)
      const lt = LogtrainProcess.start({
        HTTP_PORT: String(http),
        OTLP: "true",
        HTTP_EVENTS: "true",
        HTTP_MAX_BODY_MEMORY: String(BUDGET),
        ROUTES: JSON.stringify({})
      })
      try {
        await LogtrainProcess.ready(lt)
        const waitsBefore = await metric(http!, "logtrain_input_limited_total", 'reason="body_memory_wait"')
        const first = post(http!, input.path, input.contentType, input.body(DECLARED))
        first.start()
        await sleep(300)
        const second = post(http!, input.path, input.contentType, input.body(DECLARED))
        second.start()
        second.finish()
        await sleep(700)
        const waits = await metric(http!, "logtrain_input_limited_total", 'reason="body_memory_wait"')
        const waitedWhileFirstRead = !second.answered
        first.finish()
        const [firstStatus, secondStatus] = await Promise.all([first.result, second.result])
        const numbers = `first ${firstStatus}, second ${secondStatus}, waits ${waitsBefore} → ${waits}; ` +
          `second answered before the first was read: ${!waitedWhileFirstRead}`
        assert.isTrue(waitedWhileFirstRead, numbers)
        assert.strictEqual(waits - waitsBefore, 1, numbers)
        assert.match(firstStatus, / 200 /, numbers)
        assert.match(secondStatus, / 200 /, numbers)
      } finally {
        await lt.stop()
      }
    }, 30_000)
  }
})
