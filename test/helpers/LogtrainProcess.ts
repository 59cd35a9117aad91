/**
 * logtrain as a real process, configured through its environment the way operators configure it.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { dirname, join, resolve } from "node:path"

export interface LogtrainProcess {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  readonly httpPort: number
  /** Sends SIGTERM and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
  /** Resolves with the exit code when the process ends by itself. */
  exited(): Promise<number | null>
}

/**
 * The sources, or a bundle: `LOGTRAIN_BUNDLE=<a bundle's logtrain.js>` (e.g. dist/bundle/logtrain.js,
 * or an older commit's) runs these tests against it — the same variable the bundle's own tests take
 * (Bundle.ts), and its logtail.js beside it for logtail.
 */
const bundle = process.env.LOGTRAIN_BUNDLE === undefined || process.env.LOGTRAIN_BUNDLE === ""
  ? undefined
  : resolve(import.meta.dirname, "../..", process.env.LOGTRAIN_BUNDLE)
const entry = bundle ?? join(import.meta.dirname, "../../src/programs/logtrain.ts")
const logtailEntry = bundle === undefined ? join(import.meta.dirname, "../../src/programs/logtail.ts") : join(dirname(bundle), "logtail.js")

export const start = (env: Record<string, string>, args: ReadonlyArray<string> = []): LogtrainProcess => startEntry(entry, env, args)

/** logtail, the other program, as a process. */
export const startLogtail = (env: Record<string, string>, args: ReadonlyArray<string> = []): LogtrainProcess =>
  startEntry(logtailEntry, env, args)

/** A script of a bundle (test/helpers/Bundle.ts), run as the image runs it. */
export const startScript = (script: string, env: Record<string, string>, args: ReadonlyArray<string> = []): LogtrainProcess =>
  startEntry(script, env, args)

const startEntry = (entry: string, env: Record<string, string>, args: ReadonlyArray<string>): LogtrainProcess => {
  let out = ""
  let err = ""
  const child = spawn(process.execPath, [entry, ...args], {
    env: { PATH: process.env.PATH ?? "", TZ: "UTC", LISTEN_ADDRESS: "127.0.0.1", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()))
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()))
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    httpPort: Number(env.HTTP_PORT ?? 9000),
    exited: () => exit,
    stop: (signal = "SIGTERM") => {
      if (child.exitCode === null) child.kill(signal)
      return exit
    }
  }
}

/** Waits until /readyz answers 200. */
export const ready = async (lt: LogtrainProcess, timeoutMs = 15_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (lt.child.exitCode !== null) throw new Error(`logtrain exited (${lt.child.exitCode}):\n${lt.stderr()}`)
    const ok = await fetch(`http://127.0.0.1:${lt.httpPort}/readyz`).then((r) => r.ok, () => false)
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`logtrain not ready after ${timeoutMs} ms:\n${lt.stderr()}`)
}
