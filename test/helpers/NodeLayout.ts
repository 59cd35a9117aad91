/**
 * A node's container log layout in a temporary directory, as the kubelet makes it: files in
 * pods/<namespace>_<pod>_<uid>/<container>/0.log, linked from containers/ by the names the
 * container log input reads; and a writer process (log-writer.ts) that plays a container runtime.
 */
import { spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export const CONTAINER_ID = "a1b2c3d4".repeat(8)

export interface NodeLayout {
  readonly root: string
  /** What KUBERNETES_LOG_PATH names. */
  readonly containers: string
  /** A STATE_DIR. */
  readonly state: string
  /** A container's log file (empty), linked from the containers directory as the kubelet does. */
  container(pod: string, namespace: string, name?: string): { readonly file: string; readonly link: string }
  /** The environment of a logtrain following this node's files, its HTTP server on port `http`. */
  env(http: number): Record<string, string>
  remove(): void
}

export const make = (): NodeLayout => {
  const root = mkdtempSync(join(tmpdir(), "logtrain-node-"))
  const containers = join(root, "containers")
  mkdirSync(containers)
  return {
    root,
    containers,
    state: join(root, "state"),
    container: (pod, namespace, name = "app") => {
      const dir = join(root, "pods", `${namespace}_${pod}_uid`, name)
      mkdirSync(dir, { recursive: true })
      const file = join(dir, "0.log")
      writeFileSync(file, "")
      const link = join(containers, `${pod}_${namespace}_${name}-${CONTAINER_ID}.log`)
      symlinkSync(file, link)
      return { file, link }
    },
    env: (http) => ({ HTTP_PORT: String(http), KUBERNETES: "true", KUBERNETES_LOG_PATH: containers, STATE_DIR: join(root, "state") }),
    remove: () => rmSync(root, { recursive: true, force: true })
  }
}

const writer = join(import.meta.dirname, "log-writer.ts")

/**
 * Runs the writer process to completion: `count` lines from `from` (`line <n>`, see log-writer.ts),
 * at `rate` lines per second, rotating every `every` lines.
 */
export const write = (
  file: string,
  format: "docker" | "cri",
  from: number,
  count: number,
  rate: number,
  rotate: "none" | "rename" | "copytruncate" = "none",
  every = 0
): Promise<void> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [writer, file, format, String(from), String(count), String(rate), rotate, String(every)], {
      stdio: ["ignore", "ignore", "inherit"]
    })
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`writer exited ${code}`))))
  })

/** One CRI line, `line n`. */
export const criLine = (n: number, stream: "stdout" | "stderr" = "stdout") => `2026-01-01T00:00:00.000000000Z ${stream} F line ${n}\n`

/** `line from` .. `line from+count-1`. */
export const lines = (from: number, count: number): Array<string> => Array.from({ length: count }, (_, n) => `line ${from + n}`)
