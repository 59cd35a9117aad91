/**
 * The persistent log store as a service: what `persistent://` drains and `GET /logs/:key` use.
 * Kept apart from its Postgres implementation (PersistentLogs.ts), so that the drain registry can
 * name it without loading the SQL client: that happens only when PERSISTENT=true.
 */
import { Context, type Effect, type Option, type Stream } from "effect"
import type { SqlError } from "effect/sql"

export class PersistentLogs extends Context.Service<PersistentLogs, {
  /** Stores lines (without their newline) for a key, after what it already holds. */
  readonly append: (key: string, lines: ReadonlyArray<string>) => Effect.Effect<void, SqlError.SqlError>
  /**
   * A key's lines, oldest first, each ending with a newline — the last `tail` of them when given;
   * none when nothing was ever stored for the key.
   */
  readonly read: (
    key: string,
    tail?: number
  ) => Effect.Effect<Option.Option<Stream.Stream<string, SqlError.SqlError>>, SqlError.SqlError>
}>()("logtrain/storage/PersistentLogs") {}
