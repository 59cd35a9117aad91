/**
 * Log lines with fields. Fields are log annotations, so LOG_FORMAT=logfmt prints them as
 * `key=value` pairs and LOG_FORMAT=json as an object, instead of one JSON string in the message.
 */
import { Effect } from "effect"

type Fields = Readonly<Record<string, unknown>>

export const debug = (message: string, fields: Fields = {}) => Effect.annotateLogs(Effect.logDebug(message), fields)
export const info = (message: string, fields: Fields = {}) => Effect.annotateLogs(Effect.logInfo(message), fields)
export const warn = (message: string, fields: Fields = {}) => Effect.annotateLogs(Effect.logWarning(message), fields)
export const error = (message: string, fields: Fields = {}) => Effect.annotateLogs(Effect.logError(message), fields)
