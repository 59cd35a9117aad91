/**
 * A Redis server of a test's own (the machine's shared one must never be stopped), on a port of
 * its own, nothing persisted: a test can kill it and start it again, as a Redis pod restarts.
 * Debian's redis-tools ships the server as redis-check-rdb (redis-server is a link to it, in the
 * redis-server package): either runs, the name it is started under choosing the mode.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync } from "node:fs"

const binary = (): string => {
  for (const path of ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/bin/redis-check-rdb"]) if (existsSync(path)) return path
  throw new Error("no redis-server (Debian: apt-get install redis-tools; scripts/install-peers.sh does)")
}

export interface RedisServer {
  readonly port: number
  /** Kills it (SIGKILL by default): everything it held is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Starts it again, empty, on the same port. */
  start(): Promise<void>
}

const ping = (port: number) => {
  try {
    return execFileSync("redis-cli", ["-p", String(port), "PING"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim() === "PONG"
  } catch {
    return false
  }
}

export const start = async (port: number): Promise<RedisServer> => {
  let child: ChildProcess | undefined
  const launch = async () => {
    child = spawn(binary(), ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      argv0: "redis-server",
      stdio: "ignore"
    })
    const deadline = Date.now() + 10_000
    while (!ping(port)) {
      if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not start`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  await launch()
  return {
    port,
    kill: async (signal = "SIGKILL") => {
      const running = child
      if (running === undefined || running.exitCode !== null) return
      const exited = new Promise((r) => running.once("exit", r))
      running.kill(signal)
      await exited
    },
    start: launch
  }
}
