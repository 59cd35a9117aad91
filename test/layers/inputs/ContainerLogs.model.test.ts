/**
 * A model-based test of the container log input, as Vector tests its file watcher: fast-check
 * generates sequences of writes (whole and split lines), rotations by rename and by copytruncate,
 * deletions, a drain going down and coming back, and logtrain stopped (SIGTERM-like: the scope
 * closed, drains flushed, the last checkpoint saved) or killed (SIGKILL-like: nothing delivered or
 * saved after the instant) and started again — while it runs or while it is down — and runs them
 * against the real input, router and drains on a temporary directory. A write or a rotation may
 * also happen in the middle of one of the input's looks at a file — right after it has checked that
 * the file still begins as it did — as a writer running beside it can. Then everything comes back
 * and the model checks what each file's drain got: every line written, at least once, in order,
 * none cut or merged, and twice only after a kill.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { vi } from "vitest"
import { Duration, Effect, Exit, Layer, Scope } from "effect"
import { appendFileSync, copyFileSync, renameSync, rmSync, truncateSync, unlinkSync, writeFileSync } from "node:fs"
import { MemoryDatasource } from "../../../src/layers/datasources/Memory.ts"
import * as ContainerLogs from "../../../src/layers/inputs/containers/ContainerLogs.ts"
import * as PodMetadata from "../../../src/layers/kubernetes/PodMetadata.ts"
import { Checkpoints, type FileCheckpoint } from "../../../src/layers/storage/Checkpoints.ts"
import * as RouterCore from "../../../src/layers/routing/RouterCore.ts"
import * as MemoryDrains from "../../helpers/MemoryDrains.ts"
import type * as MemorySink from "../../helpers/MemorySink.ts"
import * as NodeLayout from "../../helpers/NodeLayout.ts"

/** Writer actions to run inside one of the input's next checks that a file still begins as it did: each counts the checks down to its own. */
const duringLook: Array<{ checks: number; readonly action: () => void }> = []

vi.mock(import("../../../src/layers/inputs/containers/files.ts"), async (importOriginal) => {
  const original = await importOriginal()
  return {
    ...original,
    matches: (...args: Parameters<typeof original.matches>) => {
      const result = original.matches(...args)
      for (const due of duringLook.slice()) {
        if (--due.checks > 0) continue
        duringLook.splice(duringLook.indexOf(due), 1)
        due.action()
      }
      return result
    }
  }
})

const DRAIN = "syslog+tcp://drain.example:514"
const FILES = 2
const T = "2026-01-01T00:00:00.000000000Z"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Model {
  readonly written: Array<number>
  readonly deleted: Array<boolean>
  /**
   * Deleted, then logtrain stopped: what a drain had not had of it by then is gone with the file
   * (beyond the node's retention), so only order is checked.
   */
  readonly forgotten: Array<boolean>
  running: boolean
  killed: boolean
}

interface Real {
  readonly dirs: NodeLayout.NodeLayout
  readonly files: ReadonlyArray<{ readonly file: string; rotations: number }>
  readonly sink: MemorySink.MemorySink
  readonly start: () => Promise<void>
  readonly stop: (kill: boolean) => Promise<void>
  readonly log: Array<string>
}

const hostname = (i: number) => `app${i}.shop`

/** Lines n..n+count-1 of a file: some split in two CRI pieces, some on stderr. */
const lines = (from: number, count: number, split: boolean) => {
  let text = ""
  for (let n = from; n < from + count; n++) {
    const stream = n % 3 === 0 ? "stderr" : "stdout"
    if (split && n % 2 === 0) text += `${T} ${stream} P li\n${T} ${stream} F ne ${n}\n`
    else text += `${T} ${stream} F line ${n}\n`
  }
  return text
}

class Write implements fc.AsyncCommand<Model, Real> {
  readonly file: number
  readonly count: number
  readonly split: boolean
  constructor(file: number, count: number, split: boolean) {
    this.file = file
    this.count = count
    this.split = split
  }
  check = (m: Readonly<Model>) => !m.deleted[this.file]
  async run(m: Model, r: Real) {
    appendFileSync(r.files[this.file]!.file, lines(m.written[this.file]!, this.count, this.split))
    m.written[this.file]! += this.count
  }
  toString = () => `write(${this.file}, ${this.count}${this.split ? ", split" : ""})`
}

class Rotate implements fc.AsyncCommand<Model, Real> {
  readonly file: number
  readonly how: "rename" | "copytruncate"
  constructor(file: number, how: "rename" | "copytruncate") {
    this.file = file
    this.how = how
  }
  check = (m: Readonly<Model>) => !m.deleted[this.file]
  async run(_m: Model, r: Real) {
    const f = r.files[this.file]!
    const rotated = `${f.file}.${++f.rotations}`
    if (this.how === "rename") {
      renameSync(f.file, rotated)
      writeFileSync(f.file, "")
    } else {
      copyFileSync(f.file, rotated)
      truncateSync(f.file, 0)
    }
  }
  toString = () => `${this.how}(${this.file})`
}

/** The pod goes away: its file and link are deleted (while logtrain runs: it reads it to its end). */
class Delete implements fc.AsyncCommand<Model, Real> {
  readonly file: number
  constructor(file: number) {
    this.file = file
  }
  check = (m: Readonly<Model>) => m.running && !m.deleted[this.file]
  async run(m: Model, r: Real) {
    // Gives it time to see the last writes before the file is gone from the directory.
    await sleep(100)
    const f = r.files[this.file]!
    unlinkSync(f.file)
    m.deleted[this.file] = true
  }
  toString = () => `delete(${this.file})`
}

class Drain implements fc.AsyncCommand<Model, Real> {
  readonly up: boolean
  constructor(up: boolean) {
    this.up = up
  }
  check = () => true
  async run(_m: Model, r: Real) {
    r.sink.failNext(this.up ? 0 : 1_000_000_000)
  }
  toString = () => `drain ${this.up ? "up" : "down"}`
}

class Stop implements fc.AsyncCommand<Model, Real> {
  readonly kill: boolean
  constructor(kill: boolean) {
    this.kill = kill
  }
  check = (m: Readonly<Model>) => m.running
  async run(m: Model, r: Real) {
    await r.stop(this.kill)
    m.running = false
    m.deleted.forEach((deleted, i) => {
      if (deleted) m.forgotten[i] = true
    })
    if (this.kill) m.killed = true
  }
  toString = () => (this.kill ? "SIGKILL" : "SIGTERM")
}

class Start implements fc.AsyncCommand<Model, Real> {
  check = (m: Readonly<Model>) => !m.running
  async run(m: Model, r: Real) {
    await r.start()
    m.running = true
  }
  toString = () => "start"
}

/** A write or a rotation done by the writer in the middle of one of the input's looks (or, when none comes soon, as usual). */
class DuringLook implements fc.AsyncCommand<Model, Real> {
  readonly inner: Write | Rotate
  /** At the n-th check from now. */
  readonly nth: number
  constructor(inner: Write | Rotate, nth: number) {
    this.inner = inner
    this.nth = nth
  }
  check = (m: Readonly<Model>) => this.inner.check(m)
  async run(m: Model, r: Real) {
    const state = { done: false }
    // Write.run and Rotate.run do all they do before their first await: they complete inside the check.
    const action = () => {
      state.done = true
      void this.inner.run(m, r)
    }
    const due = { checks: this.nth, action }
    duringLook.push(due)
    for (let waited = 0; !state.done && waited < 300; waited += 10) await sleep(10)
    if (!state.done) {
      duringLook.splice(duringLook.indexOf(due), 1)
      await this.inner.run(m, r)
    }
  }
  toString = () => `duringLook(${this.inner.toString()}, ${this.nth})`
}

class Wait implements fc.AsyncCommand<Model, Real> {
  readonly ms: number
  constructor(ms: number) {
    this.ms = ms
  }
  check = () => true
  async run() {
    await sleep(this.ms)
  }
  toString = () => `wait(${this.ms})`
}

const writes = fc.tuple(fc.nat(FILES - 1), fc.integer({ min: 1, max: 300 }), fc.boolean()).map(([f, n, s]) => new Write(f, n, s))
const rotations = fc.tuple(fc.nat(FILES - 1), fc.constantFrom("rename" as const, "copytruncate" as const)).map(([f, how]) => new Rotate(f, how))

const commands = [
  writes,
  rotations,
  fc.tuple(fc.oneof(writes, rotations), fc.integer({ min: 1, max: 3 })).map(([inner, nth]) => new DuringLook(inner, nth)),
  fc.nat(FILES - 1).map((f) => new Delete(f)),
  fc.boolean().map((up) => new Drain(up)),
  fc.boolean().map((kill) => new Stop(kill)),
  fc.constant(new Start()),
  fc.integer({ min: 10, max: 300 }).map((ms) => new Wait(ms))
]

/** logtrain's container input, router and a drain of memory, on a fresh node. */
const makeReal = async (): Promise<Real> => {
  const dirs = NodeLayout.make()
  const files = Array.from({ length: FILES }, (_, i) => ({ file: dirs.container(`app${i}-5d8f7c-x2x9q`, "shop").file, rotations: 0 }))
  const memory = await Effect.runPromise(MemoryDrains.make)
  const sink = await Effect.runPromise(memory.drains.sink(DRAIN))
  let scope: Scope.Closeable | undefined
  let killed = false
  const log: Array<string> = []
  // The checkpoint a kill leaves: the last one saved while running, not one at the stop.
  const checkpoints = Layer.effect(
    Checkpoints,
    Effect.map(Checkpoints, (real) => {
      let lastSaved: ReadonlyArray<FileCheckpoint> = []
      return Checkpoints.of({
        ...real,
        save: (entries) => {
          const list = [...entries]
          return Effect.tap(real.save(list), () => Effect.sync(() => void (lastSaved = list)))
        },
        saveAtStop: (entries) => real.saveAtStop(() => (killed ? lastSaved : entries()))
      })
    })
  ).pipe(Layer.provide(Checkpoints.layer(dirs.state)))
  const start = async () => {
    killed = false
    scope = await Effect.runPromise(Scope.make())
    const core = RouterCore.layer({
      ingestCapacity: 500,
      drainSettings: {
        bufferSize: 100,
        batchSize: 25,
        retryBaseDelay: Duration.millis(10),
        retryMaxDelay: Duration.millis(50),
        flushTimeout: Duration.millis(300)
      }
    }).pipe(Layer.provide(memory.layer), Layer.provideMerge(checkpoints))
    const input = ContainerLogs.layer({
      path: dirs.containers,
      excludeNamespaces: [],
      onlyAkkeris: false,
      maxLineBytes: 64 * 1024,
      partialTimeout: Duration.seconds(30),
      pollInterval: Duration.millis(20),
      rescanInterval: Duration.millis(100),
      checkpointInterval: Duration.millis(100),
      rotateWait: Duration.millis(300),
      goneGrace: Duration.millis(200)
    }).pipe(Layer.provide(PodMetadata.fromNames(false)))
    const routes = MemoryDatasource.layer(Array.from({ length: FILES }, (_, i) => ({ hostname: hostname(i), endpoint: DRAIN })))
    await Effect.runPromise(Layer.buildWithScope(Layer.mergeAll(input, routes).pipe(Layer.provideMerge(core)), scope))
    await Effect.runPromise(sink.gate.open)
  }
  const stop = async (kill: boolean) => {
    if (kill) {
      // Nothing is delivered, nor saved, after this instant.
      killed = true
      await Effect.runPromise(sink.gate.close)
    }
    await Effect.runPromise(Scope.close(scope!, Exit.void))
    scope = undefined
  }
  return { dirs, files, sink, start, stop, log }
}

/** What the drain got from file `i`, as line numbers (NaN for a line that is not one of ours). */
const received = (sink: MemorySink.MemorySink, i: number) =>
  sink.batches.flatMap((batch) => batch.filter((p) => p.hostname === hostname(i)).map((p) => {
    const match = /^line (\d+)$/.exec(p.message)
    return match === null ? Number.NaN : Number(match[1])
  }))

/** Runs `cmds` against a fresh node and checks what each file's drain got against the model. */
/** What each file's drain got, against the model, after `cmds` ran on a fresh node and everything came back. */
interface Outcome {
  readonly cut: Array<boolean>
  /** First arrivals, and what the model expects of them. */
  readonly first: Array<ReadonlyArray<number>>
  readonly expected: Array<ReadonlyArray<number>>
  /** Arrivals beyond the first, where the model allows none (no kill). */
  readonly twice: Array<number>
  readonly what: string
}

const run = async (cmds: Iterable<fc.AsyncCommand<Model, Real>>): Promise<Outcome> => {
  const real = await makeReal()
  const model: Model = {
    written: Array.from({ length: FILES }, () => 0),
    deleted: Array.from({ length: FILES }, () => false),
    forgotten: Array.from({ length: FILES }, () => false),
    running: false,
    killed: false
  }
  try {
    await real.start()
    model.running = true
    await fc.asyncModelRun(() => ({ model, real }), cmds)
    // Everything comes back; then each file's drain must have it all.
    real.sink.failNext(0)
    if (!model.running) {
      await real.start()
      model.running = true
    }
    const complete = () => model.written.every((count, i) => model.forgotten[i] || new Set(received(real.sink, i)).size >= count)
    for (let waited = 0; !complete() && waited < 10_000; waited += 50) await sleep(50)
    await sleep(150)
    const outcome: Outcome = { cut: [], first: [], expected: [], twice: [], what: "" }
    const described: Array<string> = []
    for (let i = 0; i < FILES; i++) {
      const got = received(real.sink, i)
      const count = model.written[i]!
      const first: Array<number> = []
      const seen = new Set<number>()
      for (const n of got) {
        if (!seen.has(n)) first.push(n)
        seen.add(n)
      }
      outcome.cut.push(got.some(Number.isNaN))
      outcome.first.push(first)
      outcome.expected.push(Array.from({ length: model.forgotten[i] ? first.length : count }, (_, n) => n))
      outcome.twice.push(model.killed ? 0 : got.length - seen.size)
      described.push(`file ${i}: ${count} written, ${got.length} received (${seen.size} distinct)`)
    }
    return { ...outcome, what: `${described.join("; ")}; commands: ${[...cmds].join(",")}` }
  } finally {
    if (model.running) await real.stop(false)
    rmSync(real.dirs.root, { recursive: true, force: true })
  }
}

/** Every line, in order, none cut or merged, none twice without a kill. */
const holds = (outcome: Outcome) => {
  assert.deepStrictEqual(outcome.cut, outcome.cut.map(() => false), `a line cut or merged — ${outcome.what}`)
  assert.deepStrictEqual(outcome.first, outcome.expected, `every line, in order — ${outcome.what}`)
  assert.deepStrictEqual(outcome.twice, outcome.twice.map(() => 0), `twice without a kill — ${outcome.what}`)
}

describe("container log input: a model of files, rotations, drains and restarts", () => {
  it("every line written is delivered, in order, none cut or merged; twice only after a kill", async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: Number(process.env.MODEL_COMMANDS ?? 14) }), async (cmds) => {
        const outcome = await run(cmds)
        assert.deepStrictEqual(outcome.first, outcome.expected, outcome.what)
        holds(outcome)
      }),
      {
        numRuns: Number(process.env.MODEL_RUNS ?? 40),
        endOnFailure: true,
        // A failure prints its seed and path: FC_SEED=… FC_PATH=… replays it.
        ...(process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) }),
        ...(process.env.FC_PATH === undefined ? {} : { path: process.env.FC_PATH })
      }
    )
  }, 240_000)

  // Sequences that once failed, kept as they were found.
  it("a file written, killed before it was read, renamed, and its successor copied and truncated while logtrain was down", async () => {
    const outcome = await run([
      new Write(1, 177, true),
      new Stop(true),
      new Rotate(1, "rename"),
      new Write(1, 64, false),
      new Wait(163),
      new Write(1, 200, true),
      new Rotate(1, "copytruncate")
    ])
    assert.deepStrictEqual(outcome.first, outcome.expected, outcome.what)
    holds(outcome)
  })

  it("a copytruncate in the middle of the look that found the drain full: the drain's backlog goes on in the copy", async () => {
    const outcome = await run([
      new Delete(1),
      new Wait(144),
      new DuringLook(new Write(0, 214, true), 1),
      new DuringLook(new Rotate(0, "copytruncate"), 1),
      new Rotate(0, "rename")
    ])
    assert.deepStrictEqual(outcome.first, outcome.expected, outcome.what)
    holds(outcome)
  })

  it("the drain down across two restarts, the second before the head had read anything: its place is kept", async () => {
    const outcome = await run([new Drain(false), new Write(0, 50, true), new Wait(300), new Stop(false), new Write(0, 269, false), new Start(), new Stop(false)])
    assert.deepStrictEqual(outcome.first, outcome.expected, outcome.what)
    holds(outcome)
  })

  it("lines written in the middle of a look at an empty file copied and truncated, then a stop and a rename while down: none twice", async () => {
    const outcome = await run([
      new DuringLook(new Write(1, 133, false), 2),
      new Rotate(1, "copytruncate"),
      new Wait(222),
      new Stop(false),
      new Rotate(1, "rename"),
      new Start(),
      new Wait(281)
    ])
    assert.deepStrictEqual(outcome.first, outcome.expected, outcome.what)
    holds(outcome)
  })
})
