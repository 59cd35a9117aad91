/**
 * Multiline joining (`logtrain.akkeris.io/multiline`): lines of one container stream that belong
 * to one event — a stack trace — joined into one message, with `\n` between them, as written.
 *
 * - Rules: `java`, `python`, `go` (their stack traces, as the runtimes print them), or
 *   `regex:<pattern>` (a line matching the pattern starts a new event; the others are appended to
 *   the event before them). A rule sees each line and a small state of the event it would join
 *   (a number), so the built-in ones can follow a trace's parts without a regex.
 * - A regex is user input. It is refused when longer than MAX_PATTERN characters, when it repeats a
 *   group that itself repeats or alternates (`(a+)+`, `(a|aa)*`: the shapes that backtrack
 *   catastrophically), or when it cannot be compiled; where V8's linear-time engine is on
 *   (`enableLinearRegExp`, done by the container log input) every pattern runs on it, so even
 *   patterns that slip through cannot take more than time in proportion to the line (and patterns
 *   it cannot run — backreferences, lookarounds — are refused). A pattern sees at most the first
 *   MAX_TESTED characters of a line: start-of-event patterns look at a line's start.
 * - EventJoiner: per stream, the event being gathered; it comes out when a line starts the next
 *   one, when no line has come for the timeout, when the file ends, or — cut, and counted — when
 *   the next line would take it past the maximum event size (that line then starts the next one).
 *   It knows where in the file its event's first line started (`pendingOffset`), so a reader
 *   can resume before it and lose nothing.
 */
import { Data } from "effect"
import type { Line, StreamName } from "./ContainerLog.ts"

export class MultilineError extends Data.TaggedError("MultilineError")<{ readonly detail: string }> {
  override get message(): string {
    return this.detail
  }
}

export interface Rule {
  /** As written in the annotation (for logs). */
  readonly name: string
  /** The state of an event that begins with `text`. */
  readonly begin: (text: string) => number
  /** Whether `text` joins an event in `state`: its next state, or -1 when it begins a new event. */
  readonly next: (text: string, state: number) => number
}

/** Longest regex accepted, in characters. */
export const MAX_PATTERN = 256
/** Characters of a line a regex is tested against. */
export const MAX_TESTED = 1024

const indented = (text: string): boolean => {
  const c = text.charCodeAt(0)
  return c === 32 /* space */ || c === 9 /* tab */
}

/** `java.lang.IllegalStateException: …`: a line naming a Java exception (dots delimit: no backtracking). */
const JAVA_EXCEPTION = /^[a-zA-Z_$][\w$]*(?:\.[a-zA-Z_$][\w$]*)+(?:Exception|Error|Throwable)(?::|$)/

/**
 * Java: an event is a line and what follows it indented (`\tat …`, `\t... 12 more`,
 * `\tSuppressed: …`) or `Caused by: …`; a line naming an exception just after a line with no trace
 * yet joins it (a logged error's message, then its exception). States: 0 no trace yet, 1 a trace.
 */
const java: Rule = {
  name: "java",
  begin: (text) => (text.startsWith("Exception in thread ") || JAVA_EXCEPTION.test(text.slice(0, 256)) ? 1 : 0),
  next: (text, state) =>
    indented(text) || text.startsWith("Caused by: ") || (state === 0 && JAVA_EXCEPTION.test(text.slice(0, 256))) ? 1 : -1
}

const TRACEBACK = "Traceback (most recent call last):"
const CHAINED = ["During handling of the above exception, another exception occurred:", "The above exception was the direct cause of the following exception:"]

/**
 * Python: a `Traceback (most recent call last):` line begins an event; its indented lines (frames,
 * source, carets) and then the first line that is not indented (`ValueError: …`) join it, and so do
 * the chained tracebacks after it (a blank line, "During handling of the above exception…", a blank
 * line, the next traceback). Any other line is an event of its own.
 * States: 0 a plain line; 1 in a traceback's frames; 2 after its exception line; 3 between chained ones.
 */
const python: Rule = {
  name: "python",
  begin: (text) => (text.startsWith(TRACEBACK) || (indented(text) && text.trimStart().startsWith("+ Exception Group Traceback")) ? 1 : 0),
  next: (text, state) => {
    switch (state) {
      case 1:
        return indented(text) ? 1 : 2
      case 2:
        return text.length === 0 ? 3 : CHAINED.includes(text) ? 3 : -1
      case 3:
        if (text.length === 0 || CHAINED.includes(text)) return 3
        return text.startsWith(TRACEBACK) ? 1 : -1
      default:
        return -1
    }
  }
}

/** `pkg.fn(args)`, `main.(*T).run(0xc000…, 0x5)`: a frame's function line. */
const goFrame = (text: string): boolean => {
  const paren = text.indexOf("(")
  return paren > 0 && text.endsWith(")") && !text.slice(0, paren).includes(" ")
}

/**
 * Go: `panic: …` or `fatal error: …` begins an event; blank lines, indented lines (file:line),
 * `goroutine N [state]:` headers, frames, `created by …`, `[signal …`, nested `panic: …` and
 * `exit status N` join it. Any other line is an event of its own. States: 0 a plain line, 1 a panic.
 */
const go: Rule = {
  name: "go",
  begin: (text) => (text.startsWith("panic: ") || text.startsWith("fatal error: ") ? 1 : 0),
  next: (text, state) => {
    if (state !== 1) return -1
    return text.length === 0 || indented(text) || text.startsWith("goroutine ") || text.startsWith("created by ") ||
        text.startsWith("[signal ") || text.startsWith("panic: ") || text.startsWith("exit status ") ||
        text.startsWith("runtime stack:") || goFrame(text)
      ? 1
      : -1
  }
}

const BUILT_IN: Record<string, Rule> = { java, python, go }

/**
 * Why a pattern may backtrack catastrophically, if it may: a repeated group that itself holds a
 * repetition or an alternation. Also refused: backreferences (no linear-time engine runs them).
 */
export const riskOf = (pattern: string): string | undefined => {
  /** Per open group: whether it holds a repetition, an alternation. */
  const groups: Array<{ repeats: boolean; alternates: boolean }> = [{ repeats: false, alternates: false }]
  /** The last atom: a group (with what it held), or something else. */
  let last: { repeats: boolean; alternates: boolean } | undefined
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    if (c === "\\") {
      const next = pattern[i + 1] ?? ""
      if (/[1-9k]/.test(next)) return "it uses a backreference"
      i++
      last = undefined
      continue
    }
    if (c === "[") {
      for (i++; i < pattern.length && pattern[i] !== "]"; i++) if (pattern[i] === "\\") i++
      last = undefined
      continue
    }
    if (c === "(") {
      groups.push({ repeats: false, alternates: false })
      last = undefined
      continue
    }
    if (c === ")") {
      last = groups.length > 1 ? groups.pop() : undefined
      if (last?.repeats === true) groups.at(-1)!.repeats = true
      continue
    }
    if (c === "|") {
      groups.at(-1)!.alternates = true
      last = undefined
      continue
    }
    let repeats = c === "*" || c === "+"
    if (c === "{") {
      const m = /^\{(\d*)(,?)(\d*)\}/.exec(pattern.slice(i))
      if (m === null) continue
      repeats = m[2] === "," ? m[3] === "" || Number(m[3]) > 1 : Number(m[1]) > 1
      i += m[0].length - 1
    } else if (!repeats && c !== "?") {
      last = undefined
      continue
    }
    if (repeats) {
      if (last !== undefined && (last.repeats || last.alternates)) {
        return "it repeats a group that itself repeats or alternates (like (a+)+ or (a|b)*), which can take exponential time"
      }
      groups.at(-1)!.repeats = true
    }
    if (pattern[i + 1] === "?") i++
    last = undefined
  }
  return undefined
}

/** Whether V8's linear-time regexp engine can be asked for (the `l` flag). */
const linearAvailable = (): boolean => {
  const linear = "l"
  try {
    return new RegExp("a", linear).flags.includes(linear)
  } catch {
    return false
  }
}

/** A `regex:` rule, or why the pattern is refused. */
export const compile = (pattern: string): Rule | MultilineError => {
  if (pattern.length === 0) return new MultilineError({ detail: "regex: the pattern is empty" })
  if (pattern.length > MAX_PATTERN) return new MultilineError({ detail: `regex: the pattern is longer than ${MAX_PATTERN} characters` })
  const risk = riskOf(pattern)
  if (risk !== undefined) return new MultilineError({ detail: `regex ${JSON.stringify(pattern)} refused: ${risk}` })
  let regex: RegExp
  try {
    regex = new RegExp(pattern, linearAvailable() ? "l" : "")
  } catch (error) {
    return new MultilineError({ detail: `regex ${JSON.stringify(pattern)} refused: ${(error as Error).message}` })
  }
  return {
    name: `regex:${pattern}`,
    begin: () => 0,
    next: (text) => (regex.test(text.length > MAX_TESTED ? text.slice(0, MAX_TESTED) : text) ? -1 : 0)
  }
}

/** The rule an annotation names, or why it is refused. */
export const parse = (annotation: string): Rule | MultilineError => {
  const text = annotation.trim()
  const builtIn = BUILT_IN[text]
  if (builtIn !== undefined) return builtIn
  if (text.startsWith("regex:")) return compile(text.slice("regex:".length))
  return new MultilineError({ detail: `multiline ${JSON.stringify(text.slice(0, 64))}: expected java, python, go or regex:<pattern>` })
}

export const isError = (value: Rule | MultilineError): value is MultilineError => value instanceof MultilineError

/** The event being gathered on one stream. */
interface Event {
  readonly lines: Array<string>
  bytes: number
  state: number
  readonly time: number
  /** Where its first line started in the file, and where its last one ended. */
  readonly offset: number
  end: number
  /** When its last line came (for the timeout). */
  since: number
  /** Whether `bytes` is exact, or a bound (three per character). */
  exact: boolean
}

const byteLength = (text: string): number => Buffer.byteLength(text, "utf8")

/** Joins lines into events, per stream; events come out through `emit`, in the order they complete. */
export class EventJoiner {
  private stdout: Event | undefined = undefined
  private stderr: Event | undefined = undefined
  /** Events cut at the maximum size. */
  cut = 0
  /** Where the last line of any event sent so far ended (a reader may resume only where no sent line is after). */
  sentEnd = Number.NEGATIVE_INFINITY
  private readonly rule: Rule
  private readonly maxBytes: number
  private readonly emit: (line: Line) => void

  constructor(rule: Rule, maxBytes: number, emit: (line: Line) => void) {
    this.rule = rule
    this.maxBytes = maxBytes
    this.emit = emit
  }

  /** Takes a (whole) line that started at byte `offset` of the file and ended at `end`, at time `now`. */
  push(line: Line, offset: number, end: number, now: number): void {
    const event = line.stream === "stdout" ? this.stdout : this.stderr
    if (event !== undefined) {
      const state = this.rule.next(line.text, event.state)
      if (state >= 0) {
        if (this.fits(event, line.text)) {
          event.lines.push(line.text)
          event.state = state
          event.since = now
          event.end = end
          return
        }
        this.cut++
      }
      this.out(line.stream, event)
    }
    const begun: Event = {
      lines: [line.text],
      bytes: line.text.length * 3,
      exact: false,
      state: this.rule.begin(line.text),
      time: line.time,
      offset,
      end,
      since: now
    }
    if (line.stream === "stdout") this.stdout = begun
    else this.stderr = begun
  }

  /**
   * Whether `text` (and a newline) fits in `event`, counting it if so. Bytes are counted as at most
   * three per character until that bound passes the limit; exactly from then on.
   */
  private fits(event: Event, text: string): boolean {
    if (event.exact) {
      const bytes = byteLength(text) + 1
      if (event.bytes + bytes > this.maxBytes) return false
      event.bytes += bytes
      return true
    }
    const bound = event.bytes + text.length * 3 + 1
    if (bound <= this.maxBytes) {
      event.bytes = bound
      return true
    }
    event.exact = true
    event.bytes = event.lines.reduce((n, l) => n + byteLength(l) + 1, -1)
    return this.fits(event, text)
  }

  private out(stream: StreamName, event: Event): void {
    if (stream === "stdout") this.stdout = undefined
    else this.stderr = undefined
    if (event.end > this.sentEnd) this.sentEnd = event.end
    this.emit({ stream, time: event.time, text: event.lines.length === 1 ? event.lines[0]! : event.lines.join("\n") })
  }

  /** Sends the events no line has joined since before `deadline`, oldest first. */
  flushOlderThan(deadline: number): void {
    const a = this.stdout
    const b = this.stderr
    const first = a !== undefined && b !== undefined && b.offset < a.offset ? "stderr" : "stdout"
    for (const stream of first === "stdout" ? ["stdout", "stderr"] as const : ["stderr", "stdout"] as const) {
      const event = stream === "stdout" ? this.stdout : this.stderr
      if (event !== undefined && event.since <= deadline) this.out(stream, event)
    }
  }

  /** Sends the events that `keep` does not keep (by stream and where they began), oldest first. */
  flushUnless(keep: (stream: StreamName, offset: number) => boolean): void {
    const a = this.stdout
    const b = this.stderr
    const order = a !== undefined && b !== undefined && b.offset < a.offset ? ["stderr", "stdout"] as const : ["stdout", "stderr"] as const
    for (const stream of order) {
      const event = stream === "stdout" ? this.stdout : this.stderr
      if (event !== undefined && !keep(stream, event.offset)) this.out(stream, event)
    }
  }

  /** Where the event of `stream` began, if one is being gathered. */
  pendingOffsetOf(stream: StreamName): number | undefined {
    return (stream === "stdout" ? this.stdout : this.stderr)?.offset
  }

  /** Where the earliest event being gathered began; undefined when none is. */
  get pendingOffset(): number | undefined {
    const a = this.stdout?.offset
    const b = this.stderr?.offset
    return a === undefined ? b : b === undefined ? a : Math.min(a, b)
  }

  /** Forgets the events being gathered (their file was truncated or replaced). */
  clear(): void {
    this.stdout = undefined
    this.stderr = undefined
  }
}
