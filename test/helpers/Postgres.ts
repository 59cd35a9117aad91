/**
 * A database of its own for a test, on the machine's PostgreSQL (127.0.0.1:5432, trust auth),
 * made with psql and dropped afterwards.
 */
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"

const HOST = process.env.PGHOST ?? "127.0.0.1"
const PORT = process.env.PGPORT ?? "5432"
const USER = process.env.PGUSER ?? "postgres"

/** Runs SQL with psql against a database; returns what it printed (unaligned, tuples only). */
export const psql = (database: string, sql: string): string =>
  execFileSync("psql", ["-h", HOST, "-p", PORT, "-U", USER, "-d", database, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"]
  }).trim()

export interface TestDatabase {
  readonly name: string
  readonly url: string
  readonly sql: (sql: string) => string
  drop(): void
}

export const create = (): TestDatabase => {
  const name = `logtrain_test_${randomBytes(6).toString("hex")}`
  psql("postgres", `create database ${name}`)
  return {
    name,
    url: `postgres://${USER}@${HOST}:${PORT}/${name}`,
    sql: (sql) => psql(name, sql),
    drop: () => {
      psql("postgres", `select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name}' and pid <> pg_backend_pid()`)
      psql("postgres", `drop database if exists ${name}`)
    }
  }
}

/** Kills every connection logtrain holds to the database (as a failover or a DBA would). */
export const killConnections = (database: TestDatabase): number =>
  Number(psql("postgres", `select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = '${database.name}' and application_name = 'logtrain'`))
