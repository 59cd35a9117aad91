/**
 * Why hot paths in logtrain never make a generator function per call (see Router.ts).
 *
 * Each shape below builds 3,000,000 small objects in chunks of 333 and hands every chunk to a
 * step that only reads it. In `fresh`, the step is a generator made from a function created for
 * that chunk — what `(chunk) => Effect.gen(function*() { ... })` does on every call. In V8 (Node
 * 24) that kept each chunk reachable until the next full collection, so every object survived
 * the young generation: several times the GC work. `shared` (one generator function, the chunk as
 * its argument — `Effect.fnUntraced`) and `plain` (a plain call) let the chunks die young.
 *
 *   node bench/generator-retention.ts
 *
 * Each shape runs in its own process (young generation 4 MB, as in the image) and reports its time,
 * the time spent in garbage collection, and the number of full collections.
 */
import { execFileSync } from "node:child_process"
import { observeGc } from "./tools/gc.ts"

const shapes = ["plain", "shared", "fresh"] as const
type Shape = typeof shapes[number]

const TOTAL = 3_000_000
const CHUNK = 333

const run = async (shape: Shape) => {
  const gc = observeGc()
  let sum = 0
  const read = (chunk: ReadonlyArray<{ readonly host: string }>) => {
    for (const item of chunk) sum += item.host.length
  }
  function* sharedStep(chunk: ReadonlyArray<{ readonly host: string }>) {
    read(chunk)
    yield 0
  }
  const started = performance.now()
  for (let i = 0; i < TOTAL;) {
    const chunk: Array<{ readonly host: string; readonly message: string }> = []
    for (let k = 0; k < CHUNK; k++, i++) chunk.push({ host: `host-${i % 7}`, message: `message ${i} ${"x".repeat(100)}` })
    if (shape === "plain") read(chunk)
    else if (shape === "shared") sharedStep(chunk).next()
    else (function*() {
      read(chunk)
      yield 0
    })().next()
  }
  const ms = performance.now() - started
  console.log(JSON.stringify({ shape, ms: Math.round(ms), ...(await gc.stop()), check: sum }))
}

const shape = process.argv[2] as Shape | undefined
if (shape !== undefined) {
  await run(shape)
} else {
  for (const s of shapes) {
    const out = execFileSync(process.execPath, ["--max-semi-space-size=4", import.meta.filename, s], { encoding: "utf8" })
    const r = JSON.parse(out) as { shape: string; ms: number; gcMs: number; fullGcs: number }
    console.log(`${r.shape.padEnd(7)} ${String(r.ms).padStart(6)} ms   GC ${String(r.gcMs).padStart(5)} ms   full GCs ${r.fullGcs}`)
  }
}
