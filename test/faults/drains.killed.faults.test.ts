/**
 * Issue 21, row B, on the built bundle: the syslog+tcp receiver is a process of its own, SIGKILLed
 * twice while lines flow at 1000 lines/s and started again on the same port a second later. What
 * it had not read when it died (in its kernel's buffer, reset by the kill) must be written again,
 * and so must what its process had read from its kernel and not yet handled (its kernel, with
 * nothing left unread, closes cleanly: a receiver's close confirms nothing): nothing lost, repeats
 * at most what logtrain counts as resent, `sent` only what arrived. (Until the drain stopped
 * taking a clean close as confirmation, such lines were lost: 6 lines once in some 25 runs.)
 */
import { assert, describe, it } from "@effect/vitest"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Bundle from "../helpers/Bundle.ts"
import { analyse } from "../helpers/Delivery.ts"
import * as DrainFaults from "../helpers/DrainFaults.ts"
import { freePort } from "../helpers/ports.ts"
import * as SinkProcess from "../helpers/SinkProcess.ts"
import * as SyslogLoad from "../helpers/SyslogLoad.ts"

const bundle = Bundle.forTests()

const SIZE = 1024
const KILLS = 2
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("syslog+tcp drain, receiver killed (issue 21, B)", () => {
  it("a receiver SIGKILLed twice at 1000 lines/s and started again: nothing lost, not even what its process had read and not handled; in order, whole, repeats within resent", async () => {
    const dir = mkdtempSync(join(tmpdir(), "logtrain-killed-"))
    const sink = await SinkProcess.start(await freePort(), join(dir, "received"))
    const relay = await DrainFaults.start(bundle, `syslog+tcp://127.0.0.1:${sink.port}`)
    const count = 8000
    try {
      const load = SyslogLoad.send({ port: relay.input, sources: ["api-0", "api-1", "api-2", "api-3"], count, rate: 1000, size: SIZE })
      for (let kill = 0; kill < KILLS; kill++) {
        await sleep(2000)
        await sink.kill()
        await sleep(1000)
        await sink.start()
      }
      await load.done
      const parse = SyslogLoad.parser(SIZE)
      const distinct = () => new Set(sink.lines()).size
      await SyslogLoad.settle(distinct, count, 5000, 20_000)
      // What arrived is confirmed (`sent`) within a second or so of the last write.
      await SyslogLoad.settle(async () => (await relay.stats()).sent, count, 3000, 5000)
      const stats = await relay.stats()
      const report = analyse(sink.lines(), parse, load.sent)
      const numbers = `${report.summary}\nmetrics ${JSON.stringify(stats)}`
      DrainFaults.show("B killed", numbers)
      DrainFaults.assertEveryLine(report, stats, numbers)
      assert.strictEqual(stats.sent, report.received, numbers)
    } finally {
      await DrainFaults.stopBoth(relay, async () => {
        await sink.kill()
        rmSync(dir, { recursive: true, force: true })
      })
    }
  }, 60_000)

  it("a receiver reading 1000 lines/s of the 2000 sent (the bottleneck), SIGKILLed: what its and logtrain's kernels held is written again; nothing lost", async () => {
    const dir = mkdtempSync(join(tmpdir(), "logtrain-killed-"))
    const sink = await SinkProcess.start(await freePort(), join(dir, "received"), 1000)
    const relay = await DrainFaults.start(bundle, `syslog+tcp://127.0.0.1:${sink.port}`, { DRAIN_WHEN_FULL: "block" })
    const count = 8000
    try {
      const load = SyslogLoad.send({ port: relay.input, sources: ["api-0", "api-1"], count, rate: 2000, size: SIZE })
      await sleep(3000)
      await sink.kill()
      await sleep(1000)
      await sink.start()
      await load.done
      const distinct = () => new Set(sink.lines()).size
      await SyslogLoad.settle(distinct, count, 5000, 30_000)
      const stats = await relay.stats()
      const report = analyse(sink.lines(), SyslogLoad.parser(SIZE), load.sent)
      const numbers = `${report.summary}\nmetrics ${JSON.stringify(stats)}`
      DrainFaults.show("B slow receiver killed", numbers)
      DrainFaults.assertEveryLine(report, stats, numbers)
    } finally {
      await DrainFaults.stopBoth(relay, async () => {
        await sink.kill()
        rmSync(dir, { recursive: true, force: true })
      })
    }
  }, 60_000)
})
