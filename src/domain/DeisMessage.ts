/**
 * The messages Deis Workflow's fluentd published to NSQ (topic `logs`), read as deis/logger read
 * them: an application's line is stored under its `app` label, tagged `<type>.<version>.<pod
 * suffix>`; a line of the deis-controller container is stored under the app it names
 * (`INFO [myapp]: created`), as `deis[controller]: INFO created`.
 *
 *   {"log": "GET / 200\n", "stream": "stdout", "time": "2016-05-31T01:34:43.123Z",
 *    "kubernetes": {"pod_name": "foo-v2-web-2ggow", "container_name": "foo-web",
 *                   "labels": {"app": "foo", "type": "web", "version": "v2"}, ...}}
 */
import { formatTime } from "./RecentLogs.ts"

export interface DeisLine {
  /** The app whose buffer the line goes to. */
  readonly app: string
  /** Where it says it comes from: the app, or `deis` for the controller. */
  readonly source: string
  readonly tag: string
  readonly time: Date
  readonly message: string
  /** The line as stored: `<time> <source>[<tag>]: <message>`. */
  readonly line: string
}

export class DeisMessageError extends Error {
  override readonly name = "DeisMessageError"
}

const CONTROLLER = /^(INFO|WARN|DEBUG|ERROR)\s+(\[(\S+)\])+:(.*)/s
const POD = /(\w.*)-(\w.*)-(\w.*)-(\w.*)/

interface Raw {
  readonly log?: unknown
  readonly time?: unknown
  readonly kubernetes?: {
    readonly pod_name?: unknown
    readonly container_name?: unknown
    readonly labels?: Record<string, unknown> | null
  } | null
}

const text = (value: unknown): string => (typeof value === "string" ? value : "")

/** A message's line, or a DeisMessageError saying why it has none. */
export const parse = (body: string): DeisLine | DeisMessageError => {
  let raw: Raw
  try {
    raw = JSON.parse(body) as Raw
  } catch (error) {
    return new DeisMessageError(`not JSON: ${(error as Error).message}`)
  }
  if (raw === null || typeof raw !== "object") return new DeisMessageError("not a JSON object")
  const time = typeof raw.time === "string" ? new Date(raw.time) : new Date(Number.NaN)
  if (Number.isNaN(time.getTime())) return new DeisMessageError(`no valid time: ${JSON.stringify(raw.time)}`)
  // One line per entry (the buffer is line-based): the final newline goes, inner ones become spaces.
  const log = text(raw.log).replace(/\r?\n$/, "").replace(/\r?\n|\r/g, " ")
  const kubernetes = raw.kubernetes ?? {}
  if (text(kubernetes.container_name).includes("deis-controller")) {
    const match = CONTROLLER.exec(log)
    if (match === null) return new DeisMessageError(`a controller line that names no app: ${JSON.stringify(log.slice(0, 100))}`)
    const message = `${match[1]} ${match[4]!.trim()}`
    return { app: match[3]!, source: "deis", tag: "controller", time, message, line: `${formatTime(time)} deis[controller]: ${message}` }
  }
  const labels = kubernetes.labels ?? {}
  const app = text(labels.app)
  if (app === "") return new DeisMessageError("no app label")
  const pod = POD.exec(text(kubernetes.pod_name))
  const tag = `${text(labels.type)}.${text(labels.version)}${pod === null ? "" : `.${pod[4]}`}`
  return { app, source: app, tag, time, message: log, line: `${formatTime(time)} ${app}[${tag}]: ${log}` }
}
