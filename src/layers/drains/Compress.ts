/**
 * Request bodies of HTTP drains, gzipped when it is worth it (OTLP and Loki receivers must accept
 * `Content-Encoding: gzip`). Compression runs on libuv's thread pool, not the event loop, at level
 * 1: log lines compress 5–10× at that level, at a fraction of the CPU of the default level 6.
 * zlib is loaded on first use (process.getBuiltinModule), not when logtrain starts: most nodes
 * never run an HTTP drain.
 */
import { Effect } from "effect"
import { Buffer } from "node:buffer"

/** Bodies smaller than this are sent as they are: too small to be worth a compression. */
export const GZIP_ABOVE = 4 * 1024

export interface Body {
  readonly bytes: Uint8Array
  /** `gzip`, or undefined when the body is sent as it is. */
  readonly encoding: "gzip" | undefined
}

export const compress = (bytes: Uint8Array, enabled: boolean): Effect.Effect<Body> =>
  !enabled || bytes.length < GZIP_ABOVE
    ? Effect.succeed({ bytes, encoding: undefined })
    : Effect.callback<Body>((resume) => {
      const zlib = process.getBuiltinModule("node:zlib")
      zlib.gzip(bytes, { level: zlib.constants.Z_BEST_SPEED }, (error, result) =>
        // gzip of a buffer in memory fails only when memory does; send it as it is then.
        resume(Effect.succeed(error === null ? { bytes: result, encoding: "gzip" } : { bytes, encoding: undefined })))
    })

export const headersOf = (body: Body, contentType: string): Record<string, string> =>
  body.encoding === undefined ? { "content-type": contentType } : { "content-type": contentType, "content-encoding": body.encoding }

export const toBytes = (text: string): Uint8Array => Buffer.from(text, "utf8")
