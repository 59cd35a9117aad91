/**
 * Issue 21, row G, on the built bundle: a syslog+tcp receiver down long enough for the drain's
 * backoff to grow (10 s: the delays between attempts reach 8 s, the next would be 16 s), then back.
 * The drain must notice within about a second whatever its backoff (a connect probe), and what
 * did not fit its buffer meanwhile (default DRAIN_BUFFER_SIZE, 1000 lines/s) is dropped and
 * counted exactly: every line sent either arrived or is counted as dropped, none twice unless
 * resent. Scaled for CI: 10 s down (the issue: 30 s).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Bundle from "../helpers/Bundle.ts"
import { analyse } from "../helpers/Delivery.ts"
import * as DrainFaults from "../helpers/DrainFaults.ts"
import { freePort } from "../helpers/ports.ts"
import * as SyslogLoad from "../helpers/SyslogLoad.ts"
import * as TcpSink from "../helpers/TcpSink.ts"

const bundle = Bundle.forTests()

const SIZE = 1024
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe("syslog+tcp drain, receiver down and back (issue 21, G)", () => {
  it("receiver down 10 s at 1000 lines/s: first delivery within 2 s of its return; drops counted exactly; in order, whole", async () => {
    const sink = await TcpSink.listen(await freePort())
    const relay = await DrainFaults.start(bundle, `syslog+tcp://127.0.0.1:${sink.port}`)
    const count = 12_000
    try {
      const load = SyslogLoad.send({ port: relay.input, sources: ["job-0", "job-1"], count, rate: 1000, size: SIZE })
      await sleep(1000)
      await sink.stop()
      await sleep(10_000)
      const before = sink.lines.length
      await sink.start()
      const back = Date.now()
      await SyslogLoad.settle(() => sink.lines.length, before + 1, 15_000, 15_000)
      const recovery = sink.times[before] === undefined ? Number.POSITIVE_INFINITY : sink.times[before]! - back
      await load.done
      await SyslogLoad.settle(() => new Set(sink.lines).size, count, 3000, 20_000)
      // Everything sent was routed (and counted) before the drain's counters are read.
      await sleep(500)
      const stats = await relay.stats()
      const report = analyse(sink.lines, SyslogLoad.parser(SIZE), load.sent)
      const numbers = `first line ${recovery} ms after the receiver came back\n${report.summary}\n` +
        `metrics ${JSON.stringify(stats)}, receiver connections ${sink.connections()}`
      DrainFaults.show("G down 10 s", numbers)
      assert.isAtMost(recovery, 2000, numbers)
      assert.strictEqual(report.lost, stats.dropped, numbers)
      DrainFaults.assertInOrder(report, stats, numbers)
    } finally {
      await DrainFaults.stopBoth(relay, () => sink.stop())
    }
  }, 60_000)
})
