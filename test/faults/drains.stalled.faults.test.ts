/**
 * Issue 21, row F, on the built bundle: a syslog+tcp receiver alive but not reading. For longer
 * than the old 30 s write timeout it is backpressure, not a failure: the kernels' buffers and the
 * drain's fill, the router waits (DRAIN_WHEN_FULL=block), and once the receiver reads again
 * everything arrives once, in order, whole. Given up on after DRAIN_STALL_TIMEOUT (here 3 s), the
 * connection is reset (no half frame delivered as a line), what it held is written again (counted
 * as resent: nothing written counts as arrived before a graceful close says so), nothing is lost.
 * Lines of 2 KB at 1000 lines/s; the receiver stops after 1 s.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Bundle from "../helpers/Bundle.ts"
import { analyse } from "../helpers/Delivery.ts"
import * as DrainFaults from "../helpers/DrainFaults.ts"
import { freePort } from "../helpers/ports.ts"
import * as SyslogLoad from "../helpers/SyslogLoad.ts"
import * as TcpSink from "../helpers/TcpSink.ts"

const bundle = Bundle.forTests()

const SIZE = 2048
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Lines through logtrain into a receiver that stops reading for `stallMs` after 1 s. */
const stalled = async (options: { readonly count: number; readonly stallMs: number; readonly env: Record<string, string> }) => {
  const sink = await TcpSink.listen(await freePort())
  const relay = await DrainFaults.start(bundle, `syslog+tcp://127.0.0.1:${sink.port}`, { DRAIN_WHEN_FULL: "block", ...options.env })
  try {
    const sources = ["worker-0", "worker-1"]
    const load = SyslogLoad.send({ port: relay.input, sources, count: options.count, rate: 1000, size: SIZE })
    await sleep(1000)
    sink.pause()
    await sleep(options.stallMs)
    sink.resume()
    await load.done
    await SyslogLoad.settle(() => new Set(sink.lines).size, options.count, 5000, 30_000)
    const stats = await relay.stats()
    const report = analyse(sink.lines, SyslogLoad.parser(SIZE), load.sent)
    const numbers = `${report.summary}\nmetrics ${JSON.stringify(stats)}, receiver connections ${sink.connections()}, ` +
      `partial frames the receiver held when a connection was reset ${sink.resetFragments.length}`
    return { report, stats, numbers, sink }
  } finally {
    await DrainFaults.stopBoth(relay, () => sink.stop())
  }
}

describe("syslog+tcp drain, receiver alive but not reading (issue 21, F)", () => {
  it("logtrain stopped while the receiver is not reading: out within DRAIN_FLUSH_TIMEOUT, what may not have arrived counted as dropped (shutdown)", async () => {
    const sink = await TcpSink.listen(await freePort())
    const relay = await DrainFaults.start(bundle, `syslog+tcp://127.0.0.1:${sink.port}`, { DRAIN_FLUSH_TIMEOUT: "2s" })
    const load = SyslogLoad.send({ port: relay.input, sources: ["worker-0", "worker-1"], count: 6000, rate: 1000, size: SIZE })
    // Stopped before it is all sent: logtrain closing its input may fail the sender's last writes.
    load.done.catch(() => undefined)
    try {
      await sleep(1000)
      sink.pause()
      // Long enough for the kernels' buffers to fill and a write to wait half written.
      await sleep(4000)
      const stopping = Date.now()
      const stopped = await relay.stop()
      const took = Date.now() - stopping
      // The receiver reads again: whatever the kernels still deliver must be whole lines.
      sink.resume()
      await sleep(2000)
      const shutdown = Number(/message="drain closed".* shutdown=(\d+)/.exec(relay.process.stderr())?.[1] ?? Number.NaN)
      const report = analyse(sink.lines, SyslogLoad.parser(SIZE), load.sent)
      const numbers = `${report.summary}\nexit ${stopped.code} after ${took} ms, dropped (shutdown) ${shutdown}, ` +
        `partial frames the receiver held when a connection was reset ${sink.resetFragments.length}`
      DrainFaults.show("F stopped while stalled", numbers)
      assert.strictEqual(stopped.code, 0, `${numbers}\n${stopped.warnings}`)
      assert.isAtMost(took, 4000, numbers)
      // At most the last line, cut: a write the kernels had taken half of when the flush time ran
      // out. The connection is reset, but Linux keeps what the receiver's kernel already had
      // readable (the line is counted as dropped: nothing not confirmed counts as sent).
      assert.isAtMost(report.cut, 1, numbers)
      assert.strictEqual(report.reordered, 0, numbers)
      assert.strictEqual(report.duplicates, 0, numbers)
      assert.isAtMost(report.lost, shutdown, numbers)
    } finally {
      await relay.stop()
      await sink.stop()
    }
  }, 60_000)

  it("not reading for 35 s (past the old 30 s write timeout): backpressure; every line once, in order, whole", async () => {
    const { numbers, report, stats } = await stalled({ count: 15_000, stallMs: 35_000, env: {} })
    DrainFaults.show("F stalled 35 s", numbers)
    assert.strictEqual(report.lost, 0, numbers)
    assert.strictEqual(report.reordered, 0, numbers)
    assert.strictEqual(report.cut, 0, numbers)
    // A slow receiver is not a dead one: nothing written twice.
    assert.strictEqual(report.duplicates, 0, numbers)
    assert.strictEqual(stats.resent, 0, numbers)
    assert.strictEqual(stats.dropped, 0, numbers)
  }, 90_000)

  it("DRAIN_STALL_TIMEOUT=3s and a receiver not reading for 7 s: the connection is reset, what it held unconfirmed written again (counted), nothing lost, no cut line", async () => {
    const { numbers, report, stats } = await stalled({ count: 8000, stallMs: 7000, env: { DRAIN_STALL_TIMEOUT: "3s" } })
    DrainFaults.show("F stall timeout", numbers)
    assert.strictEqual(report.cut, 0, numbers)
    assert.strictEqual(report.lost, 0, numbers)
    assert.strictEqual(report.reordered, 0, numbers)
    assert.isAtMost(report.duplicates, stats.resent, numbers)
    // It was given up on, and that shows.
    assert.isAbove(stats.errors, 0, numbers)
    assert.isAbove(stats.resent, 0, numbers)
    assert.strictEqual(stats.dropped, 0, numbers)
  }, 60_000)
})
