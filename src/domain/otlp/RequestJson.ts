/**
 * OTLP/JSON logs requests as packets: the JSON encoding of `ExportLogsServiceRequest` (64-bit
 * numbers as decimal strings, bytes as base64, enums as numbers) read into the records Request.ts
 * turns into packets, by the same rules.
 */
import {
  contextOf,
  type Decoded,
  type DecodeOptions,
  emptyRecord,
  MAX_DEPTH,
  OtlpDecodeError,
  recordAttribute,
  type RecordFields,
  reject,
  resourceKey,
  type ResourceInfo,
  textOf,
  toPacket
} from "./Request.ts"

/** A field of a record of the wrong type: the record alone is rejected. */
class JsonFieldError extends Error {}

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const arrayAt = (o: Record<string, unknown>, key: string, where: string): ReadonlyArray<unknown> => {
  const value = o[key]
  if (value === undefined || value === null) return []
  if (!Array.isArray(value)) throw new JsonFieldError(`${where}.${key} is not an array`)
  return value
}

const objectAt = (o: Record<string, unknown>, key: string, where: string): Record<string, unknown> | undefined => {
  const value = o[key]
  if (value === undefined || value === null) return undefined
  if (!isObject(value)) throw new JsonFieldError(`${where}.${key} is not an object`)
  return value
}

/** A 64-bit nanosecond count (a decimal string or a number) as milliseconds. */
const jsonMillis = (value: unknown, where: string): number => {
  if (value === undefined || value === null) return 0
  if (typeof value === "number" && Number.isFinite(value) && value >= 0) return Math.floor(value / 1e6)
  if (typeof value === "string" && /^\d{1,20}$/.test(value)) {
    return value.length <= 6 ? 0 : Number(value.slice(0, -6))
  }
  throw new JsonFieldError(`${where} is not a count of nanoseconds`)
}

const jsonAnyValue = (value: unknown, depth: number, where: string): unknown => {
  if (depth > MAX_DEPTH) throw new JsonFieldError(`values nested deeper than ${MAX_DEPTH}`)
  if (value === undefined || value === null) return undefined
  if (!isObject(value)) throw new JsonFieldError(`${where} is not an AnyValue object`)
  if ("stringValue" in value) {
    if (typeof value.stringValue !== "string") throw new JsonFieldError(`${where}.stringValue is not a string`)
    return value.stringValue
  }
  if ("boolValue" in value) return value.boolValue === true
  if ("intValue" in value) {
    const n = value.intValue
    if (typeof n === "number" && Number.isInteger(n)) return n
    if (typeof n === "string" && /^-?\d{1,20}$/.test(n)) return Number.isSafeInteger(Number(n)) ? Number(n) : n
    throw new JsonFieldError(`${where}.intValue is not an integer`)
  }
  if ("doubleValue" in value) {
    const n = value.doubleValue
    if (typeof n === "number" || n === "NaN" || n === "Infinity" || n === "-Infinity") return n
    throw new JsonFieldError(`${where}.doubleValue is not a number`)
  }
  if ("arrayValue" in value) {
    const array = isObject(value.arrayValue) ? value.arrayValue : {}
    return arrayAt(array, "values", `${where}.arrayValue`).map((item, i) =>
      jsonAnyValue(item, depth + 1, `${where}.arrayValue.values[${i}]`)
    )
  }
  if ("kvlistValue" in value) {
    const list = isObject(value.kvlistValue) ? value.kvlistValue : {}
    return Object.fromEntries(arrayAt(list, "values", `${where}.kvlistValue`).map((kv, i) =>
      jsonKeyValue(kv, depth + 1, `${where}.kvlistValue.values[${i}]`)
    ))
  }
  if ("bytesValue" in value) {
    if (typeof value.bytesValue !== "string") throw new JsonFieldError(`${where}.bytesValue is not base64`)
    return value.bytesValue
  }
  return undefined
}

const jsonKeyValue = (kv: unknown, depth: number, where: string): [string, unknown] => {
  if (!isObject(kv) || typeof kv.key !== "string") throw new JsonFieldError(`${where} is not a KeyValue`)
  return [kv.key, jsonAnyValue(kv.value, depth, `${where}.value`)]
}

const jsonRecord = (value: unknown): RecordFields => {
  if (!isObject(value)) throw new JsonFieldError("not an object")
  const record = emptyRecord()
  record.timeMs = jsonMillis(value.timeUnixNano, "timeUnixNano")
  record.observedMs = jsonMillis(value.observedTimeUnixNano, "observedTimeUnixNano")
  const severityNumber = value.severityNumber ?? 0
  if (typeof severityNumber !== "number" || !Number.isInteger(severityNumber)) {
    throw new JsonFieldError("severityNumber is not an integer")
  }
  record.severityNumber = severityNumber
  const severityText = value.severityText ?? ""
  if (typeof severityText !== "string") throw new JsonFieldError("severityText is not a string")
  record.severityText = severityText
  record.body = textOf(jsonAnyValue(value.body, 0, "body"))
  for (const [i, kv] of arrayAt(value, "attributes", "").entries()) {
    const [key, v] = jsonKeyValue(kv, 0, `attributes[${i}]`)
    recordAttribute(record, key, v)
  }
  return record
}

/** The packets of a parsed OTLP/JSON ExportLogsServiceRequest; throws OtlpDecodeError for one that is not. */
export const decodeJson = (json: unknown, options: DecodeOptions): Decoded => {
  const out: Decoded = { packets: [], total: 0, rejected: 0, firstRejection: undefined, truncated: 0 }
  try {
    if (!isObject(json)) throw new JsonFieldError("the body is not a JSON object")
    for (const [i, resourceLogs] of arrayAt(json, "resourceLogs", "").entries()) {
      const where = `resourceLogs[${i}]`
      if (!isObject(resourceLogs)) throw new JsonFieldError(`${where} is not an object`)
      const info: ResourceInfo = {}
      const resource = objectAt(resourceLogs, "resource", where)
      if (resource !== undefined) {
        for (const [k, kv] of arrayAt(resource, "attributes", `${where}.resource`).entries()) {
          const [key, value] = jsonKeyValue(kv, 0, `${where}.resource.attributes[${k}]`)
          resourceKey(info, key, textOf(value))
        }
      }
      const context = contextOf(info, options)
      for (const [j, scopeLogs] of arrayAt(resourceLogs, "scopeLogs", where).entries()) {
        if (!isObject(scopeLogs)) throw new JsonFieldError(`${where}.scopeLogs[${j}] is not an object`)
        for (const record of arrayAt(scopeLogs, "logRecords", `${where}.scopeLogs[${j}]`)) {
          const index = out.total++
          let fields: RecordFields
          try {
            fields = jsonRecord(record)
          } catch (error) {
            if (!(error instanceof JsonFieldError)) throw error
            reject(out, index, error.message)
            continue
          }
          toPacket(fields, context, options, out)
        }
      }
    }
  } catch (error) {
    if (error instanceof JsonFieldError) throw new OtlpDecodeError(`not an OTLP logs request (JSON): ${error.message.replace(/^\./, "")}`)
    throw error
  }
  return out
}
