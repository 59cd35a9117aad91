/**
 * A PostgreSQL cluster of a test's own (initdb on a free port, trust auth, in a temporary
 * directory), for tests that stop the database under logtrain: the machine's shared PostgreSQL
 * (127.0.0.1:5432) must never be stopped. Debian's PostgreSQL 15 binaries; as root, run as the
 * `postgres` user (initdb refuses root). Stopped with `-m immediate` (as a crash or a node's
 * power loss: backends killed, connections cut), started again on the same port and data.
 */
import { execFileSync } from "node:child_process"
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort } from "./ports.ts"

const binaries = (): string => {
  const root = "/usr/lib/postgresql"
  const versions = existsSync(root) ? readdirSync(root).toSorted((a, b) => Number(b) - Number(a)) : []
  for (const version of versions) if (existsSync(join(root, version, "bin/initdb"))) return join(root, version, "bin")
  throw new Error("no PostgreSQL server binaries under /usr/lib/postgresql (Debian: apt-get install postgresql)")
}

const asRoot = process.getuid?.() === 0

/** Runs a PostgreSQL program, as the postgres user when we are root. */
const run = (program: string, args: ReadonlyArray<string>): string => {
  const path = join(binaries(), program)
  const [file, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", path, ...args]] : [path, [...args]]
  return execFileSync(file, argv, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
}

export interface Cluster {
  readonly port: number
  /** The `postgres` database's URL (trust auth, user postgres). */
  readonly url: string
  /** Runs SQL with psql; returns what it printed (unaligned, tuples only). */
  readonly sql: (sql: string) => string
  /** Stops it: `immediate` (default) kills every backend at once, as a crash does. */
  stop(mode?: "immediate" | "fast"): void
  /** Starts it again on the same port and data; returns once it accepts connections. */
  start(): void
  /** Stops it and removes its data. */
  destroy(): void
}

export const create = async (): Promise<Cluster> => {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), "logtrain-pg-"))
  if (asRoot) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim())
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim())
    chownSync(dir, uid, gid)
  }
  const data = join(dir, "data")
  run("initdb", ["-D", data, "--auth=trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`
  let running = false
  const cluster: Cluster = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    sql: (sql) =>
      execFileSync("psql", ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"]
      }).trim(),
    start: () => {
      run("pg_ctl", ["-D", data, "-o", options, "-l", join(dir, "log"), "-w", "start"])
      running = true
    },
    stop: (mode = "immediate") => {
      if (!running) return
      run("pg_ctl", ["-D", data, "-m", mode, "-w", "stop"])
      running = false
    },
    destroy: () => {
      try {
        cluster.stop()
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }
  }
  cluster.start()
  return cluster
}
