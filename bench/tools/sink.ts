/**
 * Starts bench/tools/count-sink.ts in its own process (on `core` when given) and follows its
 * count: what every benchmark's syslog+tcp drain sends to. `distinct` starts
 * count-distinct-sink.ts instead: a syslog TCP, OTLP or Loki receiver counting distinct lines.
 * `script` runs another sink speaking the same protocol (elasticsearch-sink.ts: the Elasticsearch
 * stand-in, counting documents).
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
  distinct?: { readonly kind: "tcp" | "otlp" | "loki" | "json"; readonly lines: number },
  sink?: string
): Promise<Sink> => {
  let received = 0
  const script = join(import.meta.dirname, sink ?? (distinct === undefined ? "count-sink.ts" : "count-distinct-sink.ts"))
  const scriptArgs = distinct === undefined ? [script, String(port)] : [script, String(port), distinct.kind, String(distinct.lines)]
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
