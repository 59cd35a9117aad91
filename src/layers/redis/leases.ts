/**
 * The Lua scripts of tail leases (see keys.ts for the keys). A replica with a tail of a host open
 * holds a lease on it — its id in `owners:<host>`, scored by when the lease ends by Redis's clock —
 * and renews it; a lease not renewed (a replica SIGKILLed) ends by itself. Each script is one
 * atomic step, so replicas never see half of another's change.
 */
import * as Redis from "effect/persistence/Redis"

const NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)"

/**
 * Takes (or renews) leases. KEYS: tailed, routed, then owners:<host> for each host. ARGV: replica,
 * lease (ms), channel, whether to announce, then the hosts. Returns the hosts not in `routed`.
 */
export const take = Redis.script(
  (keys: ReadonlyArray<string>, replica: string, leaseMs: number, channel: string, announce: boolean, hosts: ReadonlyArray<string>) => [
    ...keys,
    replica,
    leaseMs,
    channel,
    announce ? 1 : 0,
    ...hosts
  ],
  {
    numberOfKeys: (keys) => keys.length,
    lua: `${NOW}
local lease = tonumber(ARGV[2])
local unrouted = {}
for i = 3, #KEYS do
  local host = ARGV[i + 2]
  redis.call('ZADD', KEYS[i], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], 2 * lease)
  redis.call('ZADD', KEYS[1], 'GT', now + lease, host)
  if redis.call('SISMEMBER', KEYS[2], host) == 0 then unrouted[#unrouted + 1] = host end
  if ARGV[4] == '1' then redis.call('PUBLISH', ARGV[3], cjson.encode({o = host})) end
end
return unrouted`
  }
).withReturnType<ReadonlyArray<string>>()

/** Gives a lease up. KEYS: owners:<host>, tailed. ARGV: replica, host. Returns the live leases left. */
export const give = Redis.script((owners: string, tailed: string, replica: string, host: string) => [owners, tailed, replica, host], {
  numberOfKeys: 2,
  lua: `${NOW}
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local left = redis.call('ZCARD', KEYS[1])
if left == 0 then redis.call('ZREM', KEYS[2], ARGV[2]) end
return left`
}).withReturnType<number>()

/** A host's live leases, and whether its route is written. KEYS: owners:<host>, routed. ARGV: host. */
export const state = Redis.script((owners: string, routed: string, host: string) => [owners, routed, host], {
  numberOfKeys: 2,
  lua: `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {redis.call('ZCARD', KEYS[1]), redis.call('SISMEMBER', KEYS[2], ARGV[1])}`
}).withReturnType<ReadonlyArray<number>>()

/** Which of the hosts have no live lease left. KEYS: owners:<host> for each. Returns their indexes (1-based). */
export const vacant = Redis.script((owners: ReadonlyArray<string>) => owners, {
  numberOfKeys: (owners) => owners.length,
  lua: `${NOW}
local found = {}
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('ZCARD', KEYS[i]) == 0 then found[#found + 1] = i end
end
return found`
}).withReturnType<ReadonlyArray<number>>()

/** The hosts with a live lease anywhere. KEYS: tailed. */
export const tailed = Redis.script((key: string) => [key], {
  numberOfKeys: 1,
  lua: `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)`
}).withReturnType<ReadonlyArray<string>>()

/** Releases a lock if this holder still has it. KEYS: the lock. ARGV: the holder's token. */
export const unlock = Redis.script((key: string, token: string) => [key, token], {
  numberOfKeys: 1,
  lua: `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`
}).withReturnType<number>()
