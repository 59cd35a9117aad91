/**
 * Routes from a Postgres `drains` table (`POSTGRES=true`, `DATABASE_URL`), followed live through
 * LISTEN/NOTIFY, and written to when a route is added or removed (logtail's live tails).
 *
 * The schema is the original's, made idempotently (migrations in `logtrain_drains_migrations`):
 * `drains (drain uuid, hostname, endpoint, tag, created, updated)` with triggers notifying
 * `drains.insert`, `drains.update` and `drains.delete` with the row as JSON — so a database the
 * original created is used as it is (it only gains the `tag` column). A notification may carry at
 * most 8000 bytes; for a row too large for that (a long CA bundle in an endpoint), the trigger
 * sends just the id with `"truncated": true`, and this datasource reloads the table instead.
 *
 * Every (re)connection LISTENs first and then reads the whole table, so nothing sent between the
 * two is missed, and notifications lost while disconnected (Postgres does not keep them) are made
 * up for: the read replaces what the table said before, adding what was missed and removing what
 * was deleted. Reconnection backs off up to 30 s; /readyz says "not ready" until synced again.
 * Rows are tracked by id, so two rows with the same route keep it until both are gone.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { Duration, Effect, Layer, type Redacted, Schedule, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { type Route, RouteChange } from "../../domain/Route.ts"
import * as Log from "../Log.ts"
import { Readiness } from "../Readiness.ts"
import { RouteTable } from "../RouteTable.ts"
import { DatasourceWriteError, WritableDatasource } from "./WritableDatasource.ts"

const SOURCE = "postgres"
const CHANNELS = ["drains.insert", "drains.update", "drains.delete"] as const

const notifyFunction = (name: string, channel: string, payload: string, row: "NEW" | "OLD") => `
create or replace function ${name}() returns trigger as $$
declare
  payload text := ${payload};
begin
  if octet_length(payload) > 7900 then
    payload := json_build_object('drain', ${row}.drain, 'truncated', true)::text;
  end if;
  perform pg_notify('${channel}', payload);
  return ${row};
end;
$$ language plpgsql`

const trigger = (name: string, event: string) => `
do $$ begin
  if not exists (select 1 from pg_trigger where not tgisinternal and tgname = '${name}') then
    create trigger ${name} after ${event} on drains for each row execute procedure ${name}();
  end if;
end $$`

const migrations = PgMigrator.fromRecord({
  "1_drains": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`create table if not exists drains (
      drain uuid primary key default gen_random_uuid(),
      hostname text not null,
      endpoint text not null,
      created timestamptz default now(),
      updated timestamptz default now()
    )`)
    // A table the original created has no tag column.
    yield* sql.unsafe(`alter table drains add column if not exists tag text`)
    yield* sql.unsafe(`create index if not exists drains_hostname_endpoint on drains (hostname, endpoint)`)
    yield* sql.unsafe(notifyFunction("notify_drains_insert", "drains.insert", "row_to_json(NEW)::text", "NEW"))
    yield* sql.unsafe(
      notifyFunction(
        "notify_drains_update",
        "drains.update",
        `'{"old":' || row_to_json(OLD)::text || ',"new":' || row_to_json(NEW)::text || '}'`,
        "NEW"
      )
    )
    yield* sql.unsafe(notifyFunction("notify_drains_delete", "drains.delete", "row_to_json(OLD)::text", "OLD"))
    yield* sql.unsafe(trigger("notify_drains_insert", "insert"))
    yield* sql.unsafe(trigger("notify_drains_update", "update"))
    yield* sql.unsafe(trigger("notify_drains_delete", "delete"))
  })
})

interface Row {
  readonly drain: string
  readonly hostname: string
  readonly endpoint: string
}

const isRow = (u: unknown): u is Row =>
  typeof u === "object" && u !== null && typeof (u as Row).drain === "string" &&
  typeof (u as Row).hostname === "string" && typeof (u as Row).endpoint === "string"

/** What a notification asks for: rows to set and to drop by id, or a reload. */
export const readNotification = (
  channel: string,
  payload: string
): { readonly set: ReadonlyArray<Row>; readonly drop: ReadonlyArray<string> } | "reload" => {
  let json: unknown
  try {
    json = JSON.parse(payload)
  } catch {
    return "reload"
  }
  if (typeof json !== "object" || json === null || (json as { truncated?: unknown }).truncated === true) return "reload"
  switch (channel) {
    case "drains.insert":
      return isRow(json) ? { set: [json], drop: [] } : "reload"
    case "drains.delete":
      return isRow(json) ? { set: [], drop: [json.drain] } : "reload"
    case "drains.update": {
      const { new: after, old: before } = json as { old?: unknown; new?: unknown }
      return isRow(before) && isRow(after) ? { set: [after], drop: before.drain === after.drain ? [] : [before.drain] } : "reload"
    }
    default:
      return "reload"
  }
}

export interface Options {
  readonly url: Redacted.Redacted<string>
}

const make = Effect.gen(function*() {
  const sql = yield* PgClient.PgClient
  const table = yield* RouteTable
  const check = yield* (yield* Readiness).register(`datasource:${SOURCE}`)
  const rows = new Map<string, Route>()

  // Suspended: the routes are read from `rows` each time it runs, not once here.
  const publish = Effect.suspend(() => table.apply(SOURCE, RouteChange.Replace({ routes: [...rows.values()] })))
  const reload = Effect.gen(function*() {
    const all = yield* sql<Row>`select drain::text as drain, hostname, endpoint from drains`
    rows.clear()
    for (const row of all) rows.set(row.drain, { hostname: row.hostname, endpoint: row.endpoint })
    yield* publish
  })

  const sync = Effect.gen(function*() {
    yield* PgMigrator.run({ loader: migrations, table: "logtrain_drains_migrations" })
    // LISTEN before reading, so that no change between the two is missed.
    const queues = yield* Effect.forEach(CHANNELS, (channel) => sql.listen(channel))
    yield* reload
    yield* check.ready
    yield* Log.info("routes loaded", { from: "postgres", rows: rows.size, routes: table.routes().length })
    yield* Stream.mergeAll(queues.map((queue) => Stream.fromQueue(queue)), { concurrency: "unbounded" }).pipe(
      Stream.runForEachArray((notifications) =>
        Effect.gen(function*() {
          let needsReload = false
          for (const notification of notifications) {
            const change = readNotification(notification.channel, notification.payload)
            if (change === "reload") {
              needsReload = true
              continue
            }
            for (const id of change.drop) rows.delete(id)
            for (const row of change.set) rows.set(row.drain, { hostname: row.hostname, endpoint: row.endpoint })
          }
          yield* needsReload ? reload : publish
        })
      )
    )
  }).pipe(Effect.scoped)

  yield* sync.pipe(
    Effect.tapError((error) =>
      Effect.andThen(
        check.notReady(`postgres: ${error.message}`),
        Log.warn("postgres datasource disconnected; reconnecting", { error: error.message })
      )
    ),
    Effect.retry(Schedule.min([Schedule.exponential(Duration.millis(200)).pipe(Schedule.jittered), Schedule.spaced(Duration.seconds(30))])),
    Effect.forkScoped
  )

  const write = (what: string, effect: Effect.Effect<unknown, { readonly message: string }>) =>
    Effect.mapError(Effect.asVoid(effect), (error) => new DatasourceWriteError({ source: SOURCE, detail: `${what}: ${error.message}` }))

  return WritableDatasource.of({
    name: SOURCE,
    // Once: logtail replicas add a tail's route again when Redis lost the record that they had.
    add: (route) =>
      write(
        "insert",
        sql`insert into drains (hostname, endpoint) select ${route.hostname}, ${route.endpoint}
            where not exists (select 1 from drains where hostname = ${route.hostname} and endpoint = ${route.endpoint})`
      ),
    remove: (route) =>
      write("delete", sql`delete from drains where hostname = ${route.hostname} and endpoint = ${route.endpoint}`)
  })
})

/** The datasource, with its own connection pool (a LISTEN holds a connection per channel). */
export const layer = (options: Options) =>
  Layer.effect(WritableDatasource, make).pipe(
    Layer.provide(PgClient.layer({ url: options.url, maxConnections: CHANNELS.length + 2, applicationName: "logtrain" })),
    Layer.provide(NodeServices.layer)
  )
