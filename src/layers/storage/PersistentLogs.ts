/**
 * Persistent log storage in Postgres (`PERSISTENT=true`, `PERSISTENT_DATABASE_URL`): what
 * `persistent://key` drains write and `GET {PERSISTENT_PATH}:key` reads.
 *
 * One row per batch (`logtrain_log_batches`: key, seq, the batch's lines, their count), so an
 * append costs the same however long a key's log already is — the original rewrote one ever
 * growing text value (`data = data || $1`) every second. A `logs` table the original left behind
 * is still read: its text comes first, before the batches.
 *
 * Reads stream: the batches of a key are fetched a page at a time, in order, so a large log is
 * never held in memory. A tail (`lines=N`) first finds, from the batches' line counts alone,
 * where the last N lines start, then streams from there.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { Effect, Layer, Option, type Redacted, Stream } from "effect"
import { SqlClient, type SqlError } from "effect/sql"

const PAGE = 200

import { PersistentLogs } from "./PersistentLogsService.ts"

export { PersistentLogs }

const migrations = PgMigrator.fromRecord({
  "1_log_batches": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(`create table if not exists logtrain_log_batches (
      key varchar(128) not null,
      seq bigint generated always as identity,
      lines text not null,
      line_count integer not null,
      created timestamptz not null default now(),
      primary key (key, seq)
    )`))
})

/** The last `n` lines of a text of newline-terminated lines. */
const lastLines = (text: string, n: number): string => {
  if (n <= 0) return ""
  let at = text.length - 1
  for (let found = 0; at > 0; at--) {
    if (text.charCodeAt(at - 1) === 10 && ++found === n) break
  }
  return text.slice(Math.max(0, at))
}

const countLines = (text: string): number => {
  let n = 0
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) n++
  return n
}

interface Counted {
  readonly seq: string
  readonly line_count: number
}

const make = Effect.gen(function*() {
  const sql = yield* PgClient.PgClient
  let migrated = false
  const ready = Effect.suspend(() =>
    migrated
      ? Effect.void
      : Effect.map(PgMigrator.run({ loader: migrations, table: "logtrain_persistent_migrations" }), () => {
        migrated = true
      })
  ).pipe(
    Effect.provideService(PgClient.PgClient, sql),
    Effect.provideService(SqlClient.SqlClient, sql),
    Effect.provide(NodeServices.layer),
    Effect.mapError((e) => e as SqlError.SqlError)
  )

  /** The original's text for a key, if its `logs` table exists and holds the key. */
  const legacy = (key: string) =>
    Effect.gen(function*() {
      const [present] = yield* sql<{ present: boolean }>`select to_regclass('logs') is not null as present`
      if (present?.present !== true) return Option.none<string>()
      const [row] = yield* sql<{ data: string }>`select data from logs where id = ${key}`
      return row === undefined ? Option.none<string>() : Option.some(row.data.endsWith("\n") || row.data === "" ? row.data : `${row.data}\n`)
    })

  /** Batches from `fromSeq` on (inclusive), page by page. */
  const batchesFrom = (key: string, fromSeq: string, skipLinesOfFirst: number) =>
    Stream.paginate({ after: BigInt(fromSeq) - 1n, first: true }, (state) =>
      Effect.map(
        // The seq goes out as text (a bigint may not fit a JS number); ordering is by the column itself.
        sql<{ seq: string; lines: string }>`select b.seq::text as seq, b.lines from logtrain_log_batches b where b.key = ${key} and b.seq > ${state.after.toString()}::bigint order by b.seq limit ${PAGE}`,
        (rows) => {
          const texts = rows.map((row, i) =>
            state.first && i === 0 && skipLinesOfFirst > 0 ? lastLines(row.lines, countLines(row.lines) - skipLinesOfFirst) : row.lines
          )
          const last = rows.at(-1)
          return [texts, rows.length < PAGE || last === undefined ? Option.none() : Option.some({ after: BigInt(last.seq), first: false })] as const
        }
      )).pipe(Stream.filter((text) => text.length > 0))

  return PersistentLogs.of({
    append: (key, lines) =>
      lines.length === 0 ? Effect.void : Effect.andThen(
        ready,
        Effect.asVoid(
          sql`insert into logtrain_log_batches (key, lines, line_count) values (${key}, ${`${lines.join("\n")}\n`}, ${lines.length})`
        )
      ),
    read: (key, tail) =>
      Effect.gen(function*() {
        yield* ready
        const old = yield* legacy(key)
        const [first] = yield* sql<{ seq: string }>`select b.seq::text as seq from logtrain_log_batches b where b.key = ${key} order by b.seq limit 1`
        if (first === undefined && Option.isNone(old)) return Option.none()
        if (tail === undefined) {
          const rest = first === undefined ? Stream.empty : batchesFrom(key, first.seq, 0)
          return Option.some(Option.isSome(old) ? Stream.concat(Stream.make(old.value), rest) : rest)
        }
        // Walk back over line counts only, to find where the last `tail` lines start.
        let needed = tail
        let start: { seq: string; skip: number } | undefined
        let before: string | undefined
        while (needed > 0) {
          const rows = before === undefined
            ? yield* sql<Counted>`select b.seq::text as seq, b.line_count from logtrain_log_batches b where b.key = ${key} order by b.seq desc limit ${PAGE}`
            : yield* sql<Counted>`select b.seq::text as seq, b.line_count from logtrain_log_batches b where b.key = ${key} and b.seq < ${before}::bigint order by b.seq desc limit ${PAGE}`
          for (const row of rows) {
            if (row.line_count >= needed) {
              start = { seq: row.seq, skip: row.line_count - needed }
              needed = 0
              break
            }
            needed -= row.line_count
            start = { seq: row.seq, skip: 0 }
          }
          if (needed === 0 || rows.length < PAGE) break
          before = rows.at(-1)!.seq
        }
        const fromBatches = start === undefined ? Stream.empty : batchesFrom(key, start.seq, start.skip)
        const fromLegacy = needed > 0 && Option.isSome(old) ? Stream.make(lastLines(old.value, needed)) : Stream.empty
        return Option.some(Stream.concat(fromLegacy, fromBatches))
      })
  })
})

export interface Options {
  readonly url: Redacted.Redacted<string>
}

export const layer = (options: Options) =>
  Layer.effect(PersistentLogs, make).pipe(
    Layer.provide(PgClient.layer({ url: options.url, maxConnections: 4, applicationName: "logtrain-persistent" }))
  )
