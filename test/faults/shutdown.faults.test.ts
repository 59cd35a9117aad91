/**
 * Issue 19.5, black-box on the bundle the image runs: logtrain stopped (SIGTERM, as Kubernetes
 * stops a pod) with twelve drains that cannot flush — six whose receivers refuse connections and
 * six whose receivers accept and never read — all holding lines. Every drain flushes at the same
 * time, so the stop takes one DRAIN_FLUSH_TIMEOUT, not twelve (before: 4 such drains at 5 s took
 * 20.1 s, 12 at the default 20 s had not exited after 40 s, past the pod's 30 s grace period).
 * What could not be delivered is counted, per drain, as dropped at shutdown.
 *
 * LOGTRAIN_BUNDLE=<script> runs another build (e.g. an older commit's) against the same fault.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Net from "node:net"
import * as Bundle from "../helpers/Bundle.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import { freePorts } from "../helpers/ports.ts"
import * as SyslogLoad from "../helpers/SyslogLoad.ts"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A receiver that accepts connections and never reads from them. */
const deaf = (port: number) =>
  new Promise<{ readonly close: () => void }>((resolve) => {
    const sockets = new Set<Net.Socket>()
    const server = Net.createServer((socket) => {
      socket.pause()
      sockets.add(socket)
      socket.on("error", () => {})
    })
    server.listen(port, "127.0.0.1", () =>
      resolve({
        close: () => {
          for (const socket of sockets) socket.destroy()
          server.close()
        }
      })
    )
  })

const FLUSH_SECONDS = 5

describe("shutdown with twelve drains that cannot flush (the bundle)", () => {
  it(`SIGTERM: out within DRAIN_FLUSH_TIMEOUT=${FLUSH_SECONDS}s (plus the inputs' own drain), every drain closed, what it held counted as dropped`, async () => {
    const [http, input, ...ports] = await freePorts(14)
    const refusing = ports.slice(0, 6)
    const deafPorts = ports.slice(6)
    const receivers = await Promise.all(deafPorts.map((port) => deaf(port!)))
    const drains = [...refusing, ...deafPorts].map((port) => `syslog+tcp://127.0.0.1:${port}`)
    const script = Bundle.build().script("logtrain")
    const lt = LogtrainProcess.startScript(script, {
      HTTP_PORT: String(http),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(input),
      DRAIN_FLUSH_TIMEOUT: `${FLUSH_SECONDS}s`,
      ROUTES: JSON.stringify({ "*": drains })
    })
    try {
      await LogtrainProcess.ready(lt)
      // 2 KB lines: enough for the deaf receivers' kernel buffers to fill and their drains to hold lines.
      const load = SyslogLoad.send({ port: input!, sources: ["worker-0"], count: 4000, rate: 2000, size: 2048 })
      await load.done
      await sleep(1000)
      const stopping = Date.now()
      const code = await lt.stop("SIGTERM")
      const took = Date.now() - stopping
      const closed = lt.stderr().split("\n").filter((l) => l.includes(`message="drain closed"`))
      const shutdown = closed.map((l) => Number(/ shutdown=(\d+)/.exec(l)?.[1] ?? Number.NaN))
      const numbers = `exit ${code} after ${took} ms; ${closed.length} drains closed, dropped at shutdown per drain: ${shutdown.join(", ")}`
      console.log(`shutdown, 12 failing drains: ${numbers}`)
      assert.strictEqual(code, 0, `${numbers}\n${lt.stderr().slice(-3000)}`)
      // One flush timeout and the input's own close, not twelve flush timeouts (60 s).
      assert.isBelow(took, (FLUSH_SECONDS + 3) * 1000, numbers)
      assert.strictEqual(closed.length, 12, numbers)
      // Each drain held lines it could not deliver, and says so.
      assert.isTrue(shutdown.every((n) => n > 0), numbers)
    } finally {
      await lt.stop("SIGKILL")
      for (const receiver of receivers) receiver.close()
    }
  }, 60_000)
})
