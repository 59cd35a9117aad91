/**
 * Starts bench/tools/count-sink.ts in its own process (on `core` when given) and follows its
 * count: what every benchmark's syslog+tcp drain sends to. `http` starts count-http-sink.ts
 * instead: an OTLP or Loki endpoint counting distinct lines.
 */
import { spawn } from "node:child_process"
import { join } from "node:path"

export interface Sink {
  /** Lines received so far. */
  readonly received: () => number
  /** Ends the sink process. */
  readonly stop: () => Promise<void>
}

export const startSink = async (
  port: number,
  core?: string,
  http?: { readonly kind: "otlp" | "loki"; readonly lines: number }
): Promise<Sink> => {
  let received = 0
  const script = join(import.meta.dirname, http === undefined ? "count-sink.ts" : "count-http-sink.ts")
  const scriptArgs = http === undefined ? [script, String(port)] : [script, String(port), http.kind, String(http.lines)]
  const child = core === undefined
    ? spawn(process.execPath, scriptArgs, { stdio: ["pipe", "pipe", "inherit"] })
    : spawn("taskset", ["-c", core, process.execPath, ...scriptArgs], { stdio: ["pipe", "pipe", "inherit"] })
  await new Promise<void>((resolve) => {
    let buffered = ""
    child.stdout!.on("data", (data: Buffer) => {
      buffered += data.toString()
      const lines = buffered.split("\n")
      buffered = lines.pop()!
      for (const l of lines) {
        if (l === "ready") resolve()
        else received = Number(l)
      }
    })
  })
  return {
    received: () => received,
    stop: () => {
      child.stdin!.end()
      return new Promise<void>((r) => child.once("exit", () => r()))
    }
  }
}
