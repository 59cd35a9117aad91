/**
 * The Redis keys logtail keeps its tail state in, all under one prefix (`LOGTAIL_REDIS_PREFIX`,
 * default `logtail ` — with a space, which no syslog hostname can hold, so they never meet the
 * recent-logs lists, whose keys are app names as deis/logger had them):
 *
 * - `<prefix>session:<id>`  a hash: the session's hostname (`h`), creation time (`c`, Redis's clock,
 *   ms), opened (`u`); expires 35 minutes after its creation.
 * - `<prefix>owners:<host>` a sorted set: the replicas with a tail of the host open, scored by when
 *   their lease ends (ms); gone once every lease has.
 * - `<prefix>tailed`        a sorted set: the hosts with a tail open anywhere, scored by their
 *   latest lease's end — what replicas publish lines for.
 * - `<prefix>routed`        a set: the hosts whose tail route logtail has written to the datasource.
 * - `<prefix>lock:<host>`   held while a replica adds or removes the host's route.
 * - `<prefix>lines`         the pub/sub channel lines (and tail announcements) go through.
 */
export const keysOf = (prefix: string) => ({
  session: (id: string) => `${prefix}session:${id}`,
  owners: (hostname: string) => `${prefix}owners:${hostname}`,
  tailed: `${prefix}tailed`,
  routed: `${prefix}routed`,
  lock: (hostname: string) => `${prefix}lock:${hostname}`,
  channel: `${prefix}lines`
})

export type Keys = ReturnType<typeof keysOf>

export const DEFAULT_PREFIX = "logtail "
