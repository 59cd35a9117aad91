/**
 * A TCP syslog receiver run as its own process (tcp-sink-process.ts), for tests that kill it the
 * way a receiver crashes (SIGKILL: its kernel resets what it had not read) and start it again.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"

const script = join(import.meta.dirname, "tcp-sink-process.ts")

export interface SinkProcess {
  readonly port: number
  /** Every line the receiver's processes read so far, in order. */
  lines(): Array<string>
  /** Kills the running receiver (SIGKILL by default) and waits until it is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Starts a receiver again, on the same port and appending to the same file. */
  start(): Promise<void>
}

/** `linesPerSecond`: a receiver that reads no faster (the bottleneck). */
export const start = async (port: number, file: string, linesPerSecond?: number): Promise<SinkProcess> => {
  let child: ChildProcess | undefined
  const launch = () =>
    new Promise<void>((resolve, reject) => {
      const args = [script, String(port), file, ...(linesPerSecond === undefined ? [] : [String(linesPerSecond)])]
      const started = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] })
      child = started
      let err = ""
      started.stderr!.on("data", (d: Buffer) => (err += d.toString()))
      started.stdout!.on("data", (d: Buffer) => {
        if (d.toString().includes("listening")) resolve()
      })
      started.once("exit", (code) => reject(new Error(`the receiver exited (${code}): ${err}`)))
    })
  await launch()
  return {
    port,
    lines: () => {
      const text = readFileSync(file, "latin1")
      return text === "" ? [] : text.slice(0, text.endsWith("\n") ? -1 : undefined).split("\n")
    },
    kill: async (signal = "SIGKILL") => {
      const running = child
      if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
      const exited = new Promise((r) => running.once("exit", r))
      running.kill(signal)
      await exited
    },
    start: launch
  }
}
