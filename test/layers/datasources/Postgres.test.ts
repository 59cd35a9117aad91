import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import * as Postgres from "../../../src/layers/datasources/Postgres.ts"
import { WritableDatasource } from "../../../src/layers/datasources/WritableDatasource.ts"
import { Readiness } from "../../../src/layers/Readiness.ts"
import { RouteTable } from "../../../src/layers/routing/RouteTable.ts"
import * as RouterCore from "../../../src/layers/routing/RouterCore.ts"
import { eventually } from "../../helpers/eventually.ts"
import * as MemoryDrains from "../../helpers/MemoryDrains.ts"
import * as TestPostgres from "../../helpers/Postgres.ts"


/** The routing core with the Postgres datasource on a fresh database. */
const start = (prepare: (db: TestPostgres.TestDatabase) => void = () => {}) =>
  Effect.gen(function*() {
    const db = yield* Effect.acquireRelease(Effect.sync(TestPostgres.create), (d) => Effect.sync(() => d.drop()))
    prepare(db)
    const { layer: factory } = yield* MemoryDrains.make
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const core = RouterCore.layer({ ingestCapacity: 100, drainSettings: {} }).pipe(Layer.provide(factory))
    const context = yield* Layer.buildWithScope(
      Layer.provideMerge(Postgres.layer({ url: Redacted.make(db.url) }), core),
      scope
    )
    const table = Context.get(context, RouteTable)
    const readiness = Context.get(context, Readiness)
    return { db, table, readiness, writable: Context.get(context, WritableDatasource) }
  })

const routes = (table: RouteTable["Service"]) =>
  table.routes().map((r) => `${r.hostname} -> ${r.endpoint}`).toSorted()

const ready = (readiness: Readiness["Service"]) =>
  Effect.map(readiness.report, (r) => r.checks.find((c) => c.name === "datasource:postgres")?.ready ?? false)

describe("Postgres datasource", () => {
  it.live("loads the table, then follows inserts, updates and deletes within a second", () =>
    Effect.gen(function*() {
      const { db, table, readiness } = yield* start((d) => {
        d.sql(`create table drains (drain uuid primary key default gen_random_uuid(), hostname text not null, endpoint text not null, created timestamptz, updated timestamptz)`)
        d.sql(`insert into drains (hostname, endpoint) values ('api', 'syslog+tcp://a:1')`)
      })
      yield* eventually(() => routes(table), ["api -> syslog+tcp://a:1"], "initial load")
      assert.isTrue(yield* ready(readiness))
      for (const [statement, expected] of [
        [`insert into drains (hostname, endpoint) values ('web', 'syslog+tcp://b:1')`, ["api -> syslog+tcp://a:1", "web -> syslog+tcp://b:1"]],
        [`update drains set endpoint = 'syslog+tcp://c:1' where hostname = 'web'`, ["api -> syslog+tcp://a:1", "web -> syslog+tcp://c:1"]],
        [`update drains set hostname = 'www' where hostname = 'web'`, ["api -> syslog+tcp://a:1", "www -> syslog+tcp://c:1"]],
        [`delete from drains where hostname = 'api'`, ["www -> syslog+tcp://c:1"]]
      ] as const) {
        const started = Date.now()
        db.sql(statement)
        yield* eventually(() => routes(table), [...expected], statement)
        assert.isBelow(Date.now() - started, 1000, `${statement} took too long to apply`)
      }
    }))

  it.live("works on a table the original created (no tag column, its triggers) and adds only the tag column", () =>
    Effect.gen(function*() {
      const { db, table } = yield* start((d) => {
        d.sql(`create table drains (drain uuid primary key default gen_random_uuid(), hostname text not null, endpoint text not null, created timestamptz, updated timestamptz)`)
        d.sql(`insert into drains (hostname, endpoint, created, updated) values ('old', 'syslog+udp://x:514', now(), now())`)
      })
      yield* eventually(() => routes(table), ["old -> syslog+udp://x:514"], "load")
      assert.strictEqual(
        db.sql(`select string_agg(column_name, ',' order by ordinal_position) from information_schema.columns where table_name = 'drains'`),
        "drain,hostname,endpoint,created,updated,tag"
      )
      assert.strictEqual(db.sql(`select count(*) from pg_trigger where not tgisinternal and tgrelid = 'drains'::regclass`), "3")
    }))

  it.live("two rows with the same route keep it until both are gone", () =>
    Effect.gen(function*() {
      const { db, readiness, table } = yield* start()
      yield* eventually(ready(readiness), true, "synced (the table exists)")
      db.sql(`insert into drains (hostname, endpoint) values ('app', 'syslog+tcp://a:1'), ('app', 'syslog+tcp://a:1')`)
      yield* eventually(() => routes(table), ["app -> syslog+tcp://a:1"], "two rows")
      db.sql(`delete from drains where drain = (select drain from drains limit 1)`)
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual(routes(table), ["app -> syslog+tcp://a:1"])
      db.sql(`delete from drains`)
      yield* eventually(() => routes(table), [], "both gone")
    }))

  it.live("after its connections are killed, reconnects and catches up with what changed meanwhile", () =>
    Effect.gen(function*() {
      const { db, table, readiness } = yield* start()
      yield* eventually(ready(readiness), true, "synced (the table exists)")
      db.sql(`insert into drains (hostname, endpoint) values ('stays', 'syslog+tcp://s:1'), ('goes', 'syslog+tcp://g:1')`)
      yield* eventually(() => routes(table), ["goes -> syslog+tcp://g:1", "stays -> syslog+tcp://s:1"], "before")
      const killed = TestPostgres.killConnections(db)
      assert.isAtLeast(killed, 3)
      // While it reconnects: nobody LISTENs, so Postgres drops these notifications.
      db.sql(`insert into drains (hostname, endpoint) values ('new', 'syslog+tcp://n:1')`)
      db.sql(`delete from drains where hostname = 'goes'`)
      yield* eventually(() => routes(table), ["new -> syslog+tcp://n:1", "stays -> syslog+tcp://s:1"], "after reconnect")
      yield* eventually(ready(readiness), true, "ready again")
      db.sql(`insert into drains (hostname, endpoint) values ('later', 'syslog+tcp://l:1')`)
      yield* eventually(() => routes(table).includes("later -> syslog+tcp://l:1"), true, "notifications flow again")
    }))

  it.live("takes a row whose notification would be too large (a long CA in its endpoint) through a reload", () =>
    Effect.gen(function*() {
      const { db, readiness, table } = yield* start()
      yield* eventually(ready(readiness), true, "synced (the table exists)")
      const ca = Buffer.from(`-----BEGIN CERTIFICATE-----\n${"A".repeat(9000)}\n-----END CERTIFICATE-----\n`).toString("base64")
      const endpoint = `syslog+tls://logs:6514?ca=${ca}`
      db.sql(`insert into drains (hostname, endpoint) values ('big', '${endpoint}')`)
      yield* eventually(() => routes(table), [`big -> ${endpoint}`], "big row")
    }))

  it.live("is writable: adding a route (twice) inserts one row, removing it deletes its rows", () =>
    Effect.gen(function*() {
      const { db, readiness, table, writable } = yield* start()
      yield* eventually(ready(readiness), true, "synced (the table exists)")
      yield* writable.add({ hostname: "tail", endpoint: "syslog+tcp://logtail:9002" })
      yield* writable.add({ hostname: "tail", endpoint: "syslog+tcp://logtail:9002" })
      assert.strictEqual(db.sql(`select hostname || ' ' || endpoint from drains`), "tail syslog+tcp://logtail:9002")
      yield* eventually(() => routes(table), ["tail -> syslog+tcp://logtail:9002"], "added")
      yield* writable.remove({ hostname: "tail", endpoint: "syslog+tcp://logtail:9002" })
      assert.strictEqual(db.sql(`select count(*) from drains`), "0")
      yield* eventually(() => routes(table), [], "removed")
    }))
})
