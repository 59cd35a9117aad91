/**
 * What a receiver got, held against what was sent, for fault tests: per source, lines lost,
 * received more than once, out of order, and lines that arrived cut or merged (not whole).
 *
 * Sources number their lines 0, 1, 2, … each; the caller says how to read a source and a number
 * from a line (and that the line is whole), so the same counting serves syslog drains, container
 * log files or anything else. Definitions:
 * - lost: numbers below what a source sent that never arrived;
 * - duplicates: arrivals of a number that had arrived already (at-least-once delivery's price);
 * - reordered: first arrivals of a number below one of the same source that arrived before it
 *   (a repeat is a duplicate, not a reordering: a batch written again after a failed connection
 *   repeats lines, it does not move them);
 * - cut: lines the caller could not read whole (a frame ended early, or two ran together);
 * - unexpected: numbers the source never sent.
 */

/** A line read whole: its source and its number there. */
export interface Numbered {
  readonly source: string
  readonly seq: number
}

export interface SourceReport {
  readonly source: string
  readonly sent: number
  /** Distinct numbers received. */
  readonly received: number
  readonly lost: number
  /** How many separate runs of consecutive numbers the lost ones make. */
  readonly lostRuns: number
  readonly duplicates: number
  readonly reordered: number
  readonly unexpected: number
  /** The first few numbers lost and reordered, for the assertion's message. */
  readonly lostExamples: ReadonlyArray<number>
  readonly reorderedExamples: ReadonlyArray<number>
}

export interface Report {
  /** Lines seen, whole or not. */
  readonly lines: number
  readonly sent: number
  /** Distinct lines received, all sources. */
  readonly received: number
  readonly lost: number
  readonly duplicates: number
  readonly reordered: number
  readonly cut: number
  readonly unexpected: number
  readonly sources: ReadonlyArray<SourceReport>
  /** The first few cut lines (shortened), for the assertion's message. */
  readonly cutExamples: ReadonlyArray<string>
  /** One line with every count, and the examples of what went wrong: for assertion messages. */
  readonly summary: string
}

const EXAMPLES = 5

const shorten = (line: string) => (line.length <= 100 ? line : `${line.slice(0, 60)}…(${line.length} chars)…${line.slice(-30)}`)

/**
 * Counts what `lines` (in the order received) say against `sent` (per source, how many lines it
 * sent). `parse` returns undefined for a line that is not whole.
 */
export const analyse = (
  lines: Iterable<string>,
  parse: (line: string) => Numbered | undefined,
  sent: ReadonlyMap<string, number>
): Report => {
  interface State {
    readonly seen: Uint8Array
    highest: number
    received: number
    duplicates: number
    reordered: number
    unexpected: number
    readonly reorderedExamples: Array<number>
  }
  const states = new Map<string, State>()
  const state = (source: string): State => {
    let s = states.get(source)
    if (s === undefined) {
      s = {
        seen: new Uint8Array(sent.get(source) ?? 0),
        highest: -1,
        received: 0,
        duplicates: 0,
        reordered: 0,
        unexpected: 0,
        reorderedExamples: []
      }
      states.set(source, s)
    }
    return s
  }
  for (const source of sent.keys()) state(source)

  let count = 0
  let cut = 0
  const cutExamples: Array<string> = []
  for (const line of lines) {
    count++
    const numbered = parse(line)
    if (numbered === undefined) {
      cut++
      if (cutExamples.length < EXAMPLES) cutExamples.push(shorten(line))
      continue
    }
    const s = state(numbered.source)
    const { seq } = numbered
    if (!Number.isInteger(seq) || seq < 0 || seq >= s.seen.length) {
      s.unexpected++
      continue
    }
    if (s.seen[seq] === 1) {
      s.duplicates++
      continue
    }
    s.seen[seq] = 1
    s.received++
    if (seq < s.highest) {
      s.reordered++
      if (s.reorderedExamples.length < EXAMPLES) s.reorderedExamples.push(seq)
    } else {
      s.highest = seq
    }
  }

  const sources: Array<SourceReport> = []
  for (const [source, s] of [...states].toSorted(([a], [b]) => a.localeCompare(b))) {
    const lostExamples: Array<number> = []
    let lostRuns = 0
    for (let i = 0; i < s.seen.length; i++) {
      if (s.seen[i] !== 0) continue
      if (lostExamples.length < EXAMPLES) lostExamples.push(i)
      if (i === 0 || s.seen[i - 1] !== 0) lostRuns++
    }
    sources.push({
      source,
      sent: s.seen.length,
      received: s.received,
      lost: s.seen.length - s.received,
      lostRuns,
      duplicates: s.duplicates,
      reordered: s.reordered,
      unexpected: s.unexpected,
      lostExamples,
      reorderedExamples: s.reorderedExamples
    })
  }
  const sum = (key: "sent" | "received" | "lost" | "duplicates" | "reordered" | "unexpected") =>
    sources.reduce((n, s) => n + s[key], 0)
  const totals = {
    sent: sum("sent"),
    received: sum("received"),
    lost: sum("lost"),
    duplicates: sum("duplicates"),
    reordered: sum("reordered"),
    unexpected: sum("unexpected")
  }
  const details = sources
    .filter((s) => s.lost + s.duplicates + s.reordered + s.unexpected > 0)
    .map((s) =>
      `${s.source}: sent ${s.sent}, received ${s.received}, lost ${s.lost}${
        s.lostExamples.length > 0 ? ` in ${s.lostRuns} run(s) (first ${s.lostExamples.join(",")})` : ""
      }, ` +
      `duplicates ${s.duplicates}, reordered ${s.reordered}${
        s.reorderedExamples.length > 0 ? ` (first ${s.reorderedExamples.join(",")})` : ""
      }, unexpected ${s.unexpected}`
    )
  const summary = [
    `${count} lines for ${totals.sent} sent: received ${totals.received} distinct, lost ${totals.lost}, duplicates ${totals.duplicates}, ` +
    `reordered ${totals.reordered}, cut ${cut}, unexpected ${totals.unexpected}`,
    ...details.slice(0, 8),
    ...cutExamples.map((line) => `cut: ${line}`)
  ].join("\n")
  return { lines: count, ...totals, cut, sources, cutExamples, summary }
}
