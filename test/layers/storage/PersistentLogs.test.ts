import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Redacted, Stream } from "effect"
import { PersistentLogs } from "../../../src/layers/storage/PersistentLogs.ts"
import * as PersistentLogsModule from "../../../src/layers/storage/PersistentLogs.ts"
import * as TestPostgres from "../../helpers/Postgres.ts"

const withStore = <A, E>(body: (store: PersistentLogs["Service"], db: TestPostgres.TestDatabase) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const db = yield* Effect.acquireRelease(Effect.sync(TestPostgres.create), (d) => Effect.sync(() => d.drop()))
    return yield* Effect.flatMap(PersistentLogs, (store) => body(store, db)).pipe(
      Effect.provide(PersistentLogsModule.layer({ url: Redacted.make(db.url) }))
    )
  })

const text = (store: PersistentLogs["Service"], key: string, tail?: number) =>
  Effect.flatMap(store.read(key, tail), (stream) =>
    Option.isNone(stream) ? Effect.succeed(undefined) : Effect.map(Stream.runCollect(stream.value), (parts) => parts.join("")))

const lines = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `line ${from + i}`)

describe("persistent log storage", () => {
  it.live("keeps each key's lines in order, across batches, and knows nothing of other keys", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.append("app", lines(0, 3))
        yield* store.append("other", ["elsewhere"])
        yield* store.append("app", lines(3, 5))
        assert.strictEqual(yield* text(store, "app"), `${lines(0, 5).join("\n")}\n`)
        assert.strictEqual(yield* text(store, "other"), "elsewhere\n")
        assert.isUndefined(yield* text(store, "nobody"))
      })))

  it.live("gives the last N lines, whatever batch they start in", () =>
    withStore((store) =>
      Effect.gen(function*() {
        for (let b = 0; b < 10; b++) yield* store.append("k", lines(b * 7, b * 7 + 7))
        for (const n of [0, 1, 6, 7, 8, 50, 70, 500]) {
          const expected = lines(Math.max(0, 70 - n), 70)
          assert.strictEqual(yield* text(store, "k", n), expected.length === 0 ? "" : `${expected.join("\n")}\n`, `tail ${n}`)
        }
      })))

  it.live("reads the original's logs table first, for the keys it holds", () =>
    withStore((store, db) =>
      Effect.gen(function*() {
        db.sql(`create table logs (id varchar(128) primary key not null, data text not null default '')`)
        db.sql(`insert into logs (id, data) values ('legacy', E'old 1\\nold 2\\n'), ('only-old', E'just this\\n')`)
        yield* store.append("legacy", ["new 1", "new 2"])
        assert.strictEqual(yield* text(store, "legacy"), "old 1\nold 2\nnew 1\nnew 2\n")
        assert.strictEqual(yield* text(store, "legacy", 3), "old 2\nnew 1\nnew 2\n")
        assert.strictEqual(yield* text(store, "only-old"), "just this\n")
      })))

  it.live("appends a batch as one row, however long the key's log is", () =>
    withStore((store, db) =>
      Effect.gen(function*() {
        for (let b = 0; b < 20; b++) yield* store.append("rows", lines(b * 100, b * 100 + 100))
        assert.strictEqual(db.sql(`select count(*) || ' ' || sum(line_count) from logtrain_log_batches where key = 'rows'`), "20 2000")
      })))
})
