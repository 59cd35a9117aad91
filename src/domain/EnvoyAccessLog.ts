/**
 * Envoy access-log entries (ALS, `envoy.data.accesslog.v3`; v2 has the same field numbers) as log
 * packets: the hostname of the service the request went to, and the message in the original
 * logtrain's router line format:
 *
 *   bytes=… request_size=… response_size=… method=… request_id=… fwd=… authority=… [origin=…]
 *   protocol=… [tls=…] status=… connect=…ms service=…ms total=…ms path=…
 *
 * The entry types are the objects `@grpc/proto-loader` decodes with `keepCase`, `enums: String`,
 * `longs: Number` and no defaults: absent fields are `undefined`.
 */
import type { LogPacket } from "./LogPacket.ts"
import { Facility, Severity } from "./LogPacket.ts"
import { isFourDigitYear } from "./syslog/Rfc5424.ts"

export interface Timestamp {
  readonly seconds?: number | undefined
  readonly nanos?: number | undefined
}
export type Duration = Timestamp

export interface UInt32Value {
  readonly value?: number | undefined
}

export interface TlsProperties {
  /** `VERSION_UNSPECIFIED`, `TLSv1`, `TLSv1_1`, `TLSv1_2`, `TLSv1_3`. */
  readonly tls_version?: string | undefined
  readonly tls_sni_hostname?: string | undefined
}

export interface ResponseFlags {
  readonly downstream_connection_termination?: boolean | undefined
}

export interface AccessLogCommon {
  readonly tls_properties?: TlsProperties | undefined
  readonly start_time?: Timestamp | undefined
  readonly time_to_last_upstream_tx_byte?: Duration | undefined
  readonly time_to_last_upstream_rx_byte?: Duration | undefined
  readonly time_to_last_downstream_tx_byte?: Duration | undefined
  readonly upstream_cluster?: string | undefined
  readonly response_flags?: ResponseFlags | undefined
}

export interface HttpRequestProperties {
  /** `GET`, `POST`, … or `METHOD_UNSPECIFIED`. */
  readonly request_method?: string | undefined
  readonly authority?: string | undefined
  readonly path?: string | undefined
  readonly forwarded_for?: string | undefined
  readonly request_id?: string | undefined
  readonly original_path?: string | undefined
  readonly request_headers_bytes?: number | undefined
  readonly request_body_bytes?: number | undefined
}

export interface HttpResponseProperties {
  readonly response_code?: UInt32Value | undefined
  readonly response_headers_bytes?: number | undefined
  readonly response_body_bytes?: number | undefined
}

export interface HttpEntry {
  readonly common_properties?: AccessLogCommon | undefined
  /** `PROTOCOL_UNSPECIFIED`, `HTTP10`, `HTTP11`, `HTTP2`, `HTTP3`. */
  readonly protocol_version?: string | undefined
  readonly request?: HttpRequestProperties | undefined
  readonly response?: HttpResponseProperties | undefined
}

export interface TcpEntry {
  readonly common_properties?: AccessLogCommon | undefined
  readonly connection_properties?: {
    readonly received_bytes?: number | undefined
    readonly sent_bytes?: number | undefined
  } | undefined
}

export interface Naming {
  /** Akkeris naming: `name-namespace` hostnames and the tag `akkeris/router`. */
  readonly akkeris: boolean
}

export const tagOf = (naming: Naming): string => naming.akkeris ? "akkeris/router" : "envoy"

/**
 * The hostname of the service an upstream cluster names — `outbound|80||web.shop.svc.cluster.local`
 * → `web.shop` (`web-shop` with Akkeris naming) — or undefined when it names none (an inbound or
 * passthrough cluster, a name without a namespace).
 */
export const serviceHostname = (cluster: string | undefined, naming: Naming): string | undefined => {
  if (cluster === undefined) return undefined
  const parts = cluster.split("|")
  if (parts.length < 4) return undefined
  const [name, namespace] = parts[3]!.split(".")
  if (name === undefined || name === "" || namespace === undefined || namespace === "") return undefined
  return naming.akkeris ? `${name}-${namespace}` : `${name}.${namespace}`
}

const millisOf = (d: Duration): number => (d.seconds ?? 0) * 1000 + (d.nanos ?? 0) / 1e6

/** Milliseconds with two decimals; an absent duration (the step never happened) is `0.00ms`. */
export const formatDuration = (d: Duration | undefined): string => `${d === undefined ? "0.00" : millisOf(d).toFixed(2)}ms`

/** The entry's time; `now` when it has none, or one RFC 5424 cannot write (outside years 0000–9999). */
export const timeOf = (t: Timestamp | undefined, now: Date): Date => {
  if (t === undefined) return now
  const time = new Date((t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6))
  return isFourDigitYear(time) ? time : now
}

/** The status: the response code, else 499 when the client went away first, else 0. */
export const statusOf = (entry: HttpEntry): number =>
  entry.response?.response_code?.value ??
    (entry.common_properties?.response_flags?.downstream_connection_termination === true ? 499 : 0)

/** The router line of an HTTP entry. */
export const formatHttp = (entry: HttpEntry): string => {
  const common = entry.common_properties ?? {}
  const request = entry.request ?? {}
  const response = entry.response ?? {}
  const requestSize = (request.request_headers_bytes ?? 0) + (request.request_body_bytes ?? 0)
  const responseSize = (response.response_headers_bytes ?? 0) + (response.response_body_bytes ?? 0)
  const tls = common.tls_properties
  return `bytes=${requestSize + responseSize} request_size=${requestSize} response_size=${responseSize}` +
    ` method=${request.request_method ?? "METHOD_UNSPECIFIED"} request_id=${request.request_id ?? ""}` +
    ` fwd=${request.forwarded_for ?? ""} authority=${request.authority ?? ""}` +
    (tls === undefined ? "" : ` origin=https://${tls.tls_sni_hostname ?? ""}${request.original_path ?? ""}`) +
    ` protocol=${(entry.protocol_version ?? "PROTOCOL_UNSPECIFIED").toLowerCase()}` +
    (tls === undefined ? "" : ` tls=${tls.tls_version ?? "VERSION_UNSPECIFIED"}`) +
    ` status=${statusOf(entry)}` +
    ` connect=${formatDuration(common.time_to_last_upstream_tx_byte)}` +
    ` service=${formatDuration(common.time_to_last_upstream_rx_byte)}` +
    ` total=${formatDuration(common.time_to_last_downstream_tx_byte)}` +
    ` path=${request.path ?? ""}`
}

/** The line of a TCP entry (the original dropped them): bytes each way, TLS, and durations. */
export const formatTcp = (entry: TcpEntry): string => {
  const common = entry.common_properties ?? {}
  const received = entry.connection_properties?.received_bytes ?? 0
  const sent = entry.connection_properties?.sent_bytes ?? 0
  const tls = common.tls_properties
  return `bytes=${received + sent} received=${received} sent=${sent} protocol=tcp` +
    (tls === undefined ? "" : ` sni=${tls.tls_sni_hostname ?? ""} tls=${tls.tls_version ?? "VERSION_UNSPECIFIED"}`) +
    ` connect=${formatDuration(common.time_to_last_upstream_tx_byte)}` +
    ` total=${formatDuration(common.time_to_last_downstream_tx_byte)}`
}

/**
 * The packets of a batch of entries, onto the end of `out`; returns how many entries named no
 * service (their cluster is not `direction|port|subset|name.namespace…`): those are left out.
 */
export const toPackets = <E extends HttpEntry | TcpEntry>(
  entries: ReadonlyArray<E>,
  format: (entry: E) => string,
  naming: Naming,
  now: Date,
  out: Array<LogPacket>
): number => {
  let unnamed = 0
  const tag = tagOf(naming)
  for (const entry of entries) {
    const hostname = serviceHostname(entry.common_properties?.upstream_cluster, naming)
    if (hostname === undefined) {
      unnamed++
      continue
    }
    out.push({
      time: timeOf(entry.common_properties?.start_time, now),
      hostname,
      tag,
      message: format(entry),
      severity: Severity.Informational,
      facility: Facility.user
    })
  }
  return unnamed
}
