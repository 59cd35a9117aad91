/**
 * Real syslog peers for interop tests: rsyslog (installed from Debian) and syslog-ng (unpacked by
 * scripts/install-peers.sh into .peers/syslog-ng), each run in the foreground with a config the
 * test writes, in a temp dir of its own. Ports are waited for, so a test starts sending only
 * once the peer listens.
 *
 * A peer that is missing fails the test with the command that installs it: interop tests are not
 * skipped.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"

export interface Peer {
  readonly dir: string
  /** The peer's process (for measuring it). */
  readonly pid: number
  /** Lines of a file the peer writes (its output), as they are now. */
  readonly lines: (file?: string) => Array<string>
  /** What the peer printed (for failure messages). */
  readonly log: () => string
  stop(): Promise<void>
}

const SYSLOG_NG_ROOT = resolve(import.meta.dirname, "../../.peers/syslog-ng/root")

const missing = (what: string) =>
  new Error(`${what} is not installed: run \`bash scripts/install-peers.sh\` (CI does, in .ci/run)`)

interface Listen {
  readonly tcp?: ReadonlyArray<number>
  readonly udp?: ReadonlyArray<number>
}

const tcpOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = Net.createConnection({ host: "127.0.0.1", port }, () => {
      socket.destroy()
      resolve(true)
    })
    socket.on("error", () => resolve(false))
  })

/** Whether something is bound to this UDP port on 127.0.0.1 (from /proc/net/udp). */
const udpBound = (port: number) => {
  const hex = port.toString(16).toUpperCase().padStart(4, "0")
  return readFileSync("/proc/net/udp", "utf8").split("\n").some((line) => line.includes(`:${hex} `) && line.includes("0100007F:"))
}

const start = async (
  name: string,
  command: string,
  args: (dir: string) => ReadonlyArray<string>,
  env: NodeJS.ProcessEnv,
  config: (dir: string) => string,
  listen: Listen
): Promise<Peer> => {
  const dir = mkdtempSync(join(tmpdir(), `logtrain-${name}-`))
  writeFileSync(join(dir, "peer.conf"), config(dir))
  let output = ""
  const child: ChildProcess = spawn(command, args(dir), { env, stdio: ["ignore", "pipe", "pipe"] })
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()))
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()))
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}):\n${output}\n--- config:\n${config(dir)}`)
    const tcp = await Promise.all((listen.tcp ?? []).map(tcpOpen))
    const udp = (listen.udp ?? []).map(udpBound)
    if ([...tcp, ...udp].every(Boolean)) break
    if (Date.now() > deadline) throw new Error(`${name} did not listen on ${JSON.stringify(listen)}:\n${output}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    dir,
    pid: child.pid!,
    log: () => output,
    lines: (file = "out.log") => {
      const path = join(dir, file)
      return existsSync(path) ? readFileSync(path, "utf8").split("\n").filter((l) => l.length > 0) : []
    },
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM")
      await exited
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** rsyslogd -n with `config(dir)`; `global(workDirectory=…)` is set for it. */
export const rsyslog = (config: (dir: string) => string, listen: Listen): Promise<Peer> => {
  if (!existsSync("/usr/sbin/rsyslogd")) throw missing("rsyslog")
  return start(
    "rsyslog",
    "/usr/sbin/rsyslogd",
    (dir) => ["-n", "-f", join(dir, "peer.conf"), "-i", join(dir, "rsyslog.pid")],
    { PATH: process.env.PATH ?? "" },
    (dir) => `global(workDirectory="${dir}")\n${config(dir)}`,
    listen
  )
}

/** syslog-ng -F from the unpacked tree, with `config(dir)` after the version line. */
export const syslogNg = (config: (dir: string) => string, listen: Listen): Promise<Peer> => {
  const binary = join(SYSLOG_NG_ROOT, "usr/sbin/syslog-ng")
  if (!existsSync(binary)) throw missing("syslog-ng")
  const lib = [
    join(SYSLOG_NG_ROOT, "lib/x86_64-linux-gnu"),
    join(SYSLOG_NG_ROOT, "usr/lib/x86_64-linux-gnu"),
    join(SYSLOG_NG_ROOT, "usr/lib/syslog-ng")
  ].join(":")
  return start(
    "syslog-ng",
    binary,
    (dir) => [
      "-F",
      "-f", join(dir, "peer.conf"),
      `--module-path=${join(SYSLOG_NG_ROOT, "usr/lib/syslog-ng/3.38")}`,
      `--persist-file=${join(dir, "persist")}`,
      `--pidfile=${join(dir, "pid")}`,
      `--control=${join(dir, "ctl")}`
    ],
    { PATH: process.env.PATH ?? "", LD_LIBRARY_PATH: lib },
    (dir) => `@version: 3.35\n${config(dir)}`,
    listen
  )
}
