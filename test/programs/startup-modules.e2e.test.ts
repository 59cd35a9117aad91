/**
 * What the bundle (the image's program) loads of Node's own modules at start: each module loaded
 * is code compiled and kept (heap) and pages of the node binary touched (its source and code
 * cache), so one that nothing uses is memory for nothing (README, Memory). Caught here: the HTTP
 * server's platform services loaded `readline` (a terminal); one import of `node:util`
 * read all its properties, and some of them load `worker_threads` and a diff algorithm.
 *
 * LOGTRAIN_BUNDLE=<script> runs another build (e.g. an older commit's) against the same check.
 */
import { assert, describe, it } from "@effect/vitest"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Bundle from "../helpers/Bundle.ts"
import * as LogtrainProcess from "../helpers/LogtrainProcess.ts"
import { freePorts } from "../helpers/ports.ts"

/**
 * Not needed by a program that uses no terminal, workers nor diffs. (`child_process` is: Node
 * loads it with `cluster`, which its `net` loads to listen.)
 */
const UNUSED = ["readline", "readline/promises", "worker_threads", "internal/util/diff", "internal/worker"]

const bundle = Bundle.forTests()

describe("the bundle at start", () => {
  it("loads none of Node's modules it does not use (syslog inputs, HTTP server, a drain)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "logtrain-modules-"))
    const list = join(dir, "modules.txt")
    const preload = join(dir, "preload.cjs")
    // Written when the process exits, after it has served a request and been stopped.
    writeFileSync(preload, `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join("\\n")))\n`)
    const [http, tcp, udp, sink] = await freePorts(4)
    const lt = LogtrainProcess.startScript(bundle.script("logtrain"), {
      HTTP_PORT: String(http),
      SYSLOG_TCP: "true",
      SYSLOG_TCP_PORT: String(tcp),
      SYSLOG_UDP: "true",
      SYSLOG_UDP_PORT: String(udp),
      ROUTES: JSON.stringify({ "*": [`syslog+tcp://127.0.0.1:${sink}`] }),
      NODE_OPTIONS: `--require ${preload}`
    })
    try {
      await LogtrainProcess.ready(lt)
      assert.isTrue((await fetch(`http://127.0.0.1:${http}/metrics`)).ok)
      assert.strictEqual(await lt.stop(), 0)
      const loaded = new Set(readFileSync(list, "utf8").split("\n").map((line) => line.replace(/^NativeModule /, "")))
      // The check sees modules at all: these are loaded by what logtrain does use.
      for (const used of ["net", "dgram", "http"]) assert.isTrue(loaded.has(used), `${used} is loaded`)
      assert.deepStrictEqual(UNUSED.filter((name) => loaded.has(name)), [])
    } finally {
      await lt.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)

  for (const limited of [true, false]) {
    const title = limited
      ? "under a memory limit (MEMORY_LIMIT) starts itself again with a heap sized from it and a 1 MB young generation"
      : "without a memory limit keeps the image's V8 settings (no heap limit of its own, NODE_OPTIONS' young generation)"
    it(`${title}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "logtrain-v8-"))
      const out = join(dir, "v8.json")
      const preload = join(dir, "preload.cjs")
      writeFileSync(preload, `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(out)}, JSON.stringify({ pid: process.pid, execArgv: process.execArgv, heapLimit: require("node:v8").getHeapStatistics().heap_size_limit })))\n`)
      const [http] = await freePorts(1)
      const lt = LogtrainProcess.startScript(bundle.script("logtrain"), {
        HTTP_PORT: String(http),
        ROUTES: JSON.stringify({}),
        NODE_OPTIONS: `--max-semi-space-size=4 --require ${preload}`,
        ...(limited ? { MEMORY_LIMIT: "16Mi" } : {})
      })
      try {
        await LogtrainProcess.ready(lt)
        assert.strictEqual(await lt.stop(), 0)
        const seen = JSON.parse(readFileSync(out, "utf8")) as { pid: number; execArgv: Array<string>; heapLimit: number }
        const numbers = JSON.stringify(seen)
        // Started again in place (execve): the same process.
        assert.strictEqual(seen.pid, lt.child.pid, numbers)
        if (limited) {
          assert.include(seen.execArgv, "--max-semi-space-size=1", numbers)
          assert.isTrue(seen.execArgv.some((flag) => flag.startsWith("--max-old-space-size=")), numbers)
          assert.isBelow(seen.heapLimit, 128 * 1024 * 1024, numbers)
        } else {
          assert.isFalse(seen.execArgv.some((flag) => flag.startsWith("--max-old-space-size") || flag.startsWith("--max-semi-space-size")), numbers)
          assert.isAbove(seen.heapLimit, 256 * 1024 * 1024, numbers)
        }
      } finally {
        await lt.stop()
        rmSync(dir, { recursive: true, force: true })
      }
    }, 60_000)
  }
})
