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
 * was deleted. /readyz says "not ready" until synced again. Reconnection backs off from 200 ms to
 * at most RETRY_MAX_MS, and starts over once a connection has synced: a database that blips now
 * and then costs about a second each time, not more each time. (An attempt is a TCP connect
 * refused at once while the database is down: cheap for it even from every node.) A warning names
 * the cause (ECONNREFUSED, a DNS failure, an authentication error), once per outage and cause, and
 * again at most every WARN_INTERVAL_MS while it lasts.
 * Rows are tracked by id, so two rows with the same route keep it until both are gone.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { Clock, Duration, Effect, Layer, type Redacted, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { type Route, RouteChange } from "../../domain/Route.ts"
import * as Log from "../Log.ts"
import { Readiness } from "../Readiness.ts"
import { RouteTable } from "../routing/RouteTable.ts"
import { describeCause } from "../transports/TransportError.ts"
import { DatasourceWriteError, WritableDatasource } from "./WritableDatasource.ts"

const SOURCE = "postgres"
const CHANNELS = ["drains.insert", "drains.update", "drains.delete"] as const
const RETRY_BASE_MS = 200
const RETRY_MAX_MS = 1000
const WARN_INTERVAL_MS = 30_000

/** The wait before reconnection attempt `attempt` (from 0): doubling from RETRY_BASE_MS, capped, ±20 %. */
const retryDelay = (attempt: number): Duration.Duration =>
  Duration.millis(Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(attempt, 10)) * (0.8 + Math.random() * 0.4))

/**
 * An error with what caused it: SqlError's message ("PgConnection: Failed to connect") says what
 * failed, its reason's cause why (`ECONNREFUSED: connect ECONNREFUSED 10.0.0.5:5432`).
 */
export const describeError = (error: { readonly message: string }): string => {
  const cause = (error as { readonly reason?: { readonly cause?: unknown } }).reason?.cause ??
    (error as { readonly cause?: unknown }).cause
  if (cause === undefined || cause === null) return error.message
  const why = describeCause(cause)
  return why === "" || error.message.includes(why) ? error.message : `${error.message} (${why})`
}

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
  }).pipe(Effect.withSpan("Postgres.reload"))

  /** Set once the current connection has synced (a later failure starts the backoff over). */
  let synced = false
  /** When the database was lost (undefined while connected), and when and why that was last said. */
  let downSince: number | undefined
  let warnedAt = 0
  let warnedWhy = ""

  const sync = Effect.gen(function*() {
    yield* PgMigrator.run({ loader: migrations, table: "logtrain_drains_migrations" })
    // LISTEN before reading, so that no change between the two is missed.
    const queues = yield* Effect.forEach(CHANNELS, (channel) => sql.listen(channel))
    yield* reload
    yield* check.ready
    synced = true
    if (downSince === undefined) {
      yield* Log.info("routes loaded", { from: "postgres", rows: rows.size, routes: table.routes().length })
    } else {
      const now = yield* Clock.currentTimeMillis
      yield* Log.info("postgres datasource reconnected; routes loaded", {
        rows: rows.size,
        routes: table.routes().length,
        downForMs: now - downSince
      })
      downSince = undefined
    }
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

  const failed = (error: { readonly message: string }) =>
    Effect.gen(function*() {
      const reason = describeError(error)
      yield* check.notReady(`postgres: ${reason}`)
      const now = yield* Clock.currentTimeMillis
      // Said again when the cause changes (the connection cut, then the reconnection refused).
      if (downSince !== undefined && reason === warnedWhy && now - warnedAt < WARN_INTERVAL_MS) return
      warnedAt = now
      warnedWhy = reason
      downSince ??= now
      yield* Log.warn("postgres datasource disconnected; reconnecting", { error: reason, downForMs: now - downSince })
    })

  /** Syncs, and on failure waits and tries again, the waits starting over after a connection that synced. */
  const follow = (attempt: number): Effect.Effect<void, never, Effect.Services<typeof sync>> =>
    Effect.catch(sync, (error) =>
      Effect.suspend(() => {
        const next = synced ? 0 : attempt
        synced = false
        return failed(error).pipe(Effect.andThen(Effect.sleep(retryDelay(next))), Effect.andThen(Effect.suspend(() => follow(next + 1))))
      }))

  yield* Effect.forkScoped(follow(0))

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
