/**
 * logtail on Redis (`STORAGE_ADAPTER=redis`): the recent-logs lists, tail sessions, the tail
 * fan-out and tail leases, all on one Redis client. Any number of replicas may share it: any of
 * them serves any tail. Loaded only when `STORAGE_ADAPTER=redis`.
 */
import { Duration, Layer } from "effect"
import { randomBytes } from "node:crypto"
import { DEFAULT_PREFIX, keysOf } from "./keys.ts"
import * as RedisConnection from "./RedisConnection.ts"
import * as RedisRecentLogs from "./RedisRecentLogs.ts"
import * as RedisTails from "./RedisTails.ts"
import * as RedisTailSessions from "./RedisTailSessions.ts"

export interface Options extends RedisConnection.Options {
  readonly linesPerApp: number
  readonly pipelineLength: number
  readonly pipelineTimeout: Duration.Duration
  /** Prefix of the tail keys and channel (keys.ts). */
  readonly prefix?: string | undefined
  readonly endpoint: string | undefined
  readonly lease?: Duration.Duration | undefined
}

export const layer = (options: Options) => {
  const keys = keysOf(options.prefix ?? DEFAULT_PREFIX)
  const replica = randomBytes(8).toString("hex")
  return Layer.mergeAll(
    RedisRecentLogs.layer(options),
    RedisTailSessions.layer({ keys }),
    RedisTails.layer({ keys, replica, endpoint: options.endpoint, lease: options.lease })
  ).pipe(Layer.provide(RedisConnection.layer({ ...options, clientName: `logtail-${replica}` })))
}
