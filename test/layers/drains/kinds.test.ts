import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Layer, Logger, Result, Scope } from "effect"
import { Writable } from "node:stream"
import * as DrainUrl from "../../../src/domain/DrainUrl.ts"
import * as LogPacket from "../../../src/domain/LogPacket.ts"
import { FrameDecoder } from "../../../src/domain/syslog/Framing.ts"
import { DrainError } from "../../../src/layers/drains/DrainError.ts"
import * as DrainRunner from "../../../src/layers/drains/DrainRunner.ts"
import * as DrainSink from "../../../src/layers/drains/DrainSink.ts"
import { Drains } from "../../../src/layers/routing/Drains.ts"
import { masked } from "../../../src/layers/drains/registry.ts"
import * as Stdout from "../../../src/layers/drains/stdout.ts"
import * as SyslogDrain from "../../../src/layers/drains/syslog.ts"

const packet = (message: string, extra: Partial<LogPacket.LogPacketFields> = {}) =>
  LogPacket.make({ time: new Date("2024-01-02T03:04:05.678Z"), hostname: "api.default", tag: "api-7d9f", message, ...extra })

describe("syslog drain encoding", () => {
  it("frames a batch as one buffer, newline or octet-counted, that a decoder splits back", () => {
    const batch = [packet("one"), packet("two\nlines"), packet("ünï")]
    const newline = SyslogDrain.encodeBatch(batch, "newline").toString("utf8")
    assert.strictEqual(newline.split("\n").length, 4)
    assert.include(newline, "two lines")
    const octet = SyslogDrain.encodeBatch(batch, "octet-counting")
    const frames = new FrameDecoder({ maxFrameBytes: 1024 }).decode(octet)
    assert.deepStrictEqual(frames.map((f) => f.slice(f.lastIndexOf(" - - - ") + 7)), ["one", "two\nlines", "ünï"])
  })

  it("cuts a datagram to the limit without splitting a character", () => {
    const bytes = SyslogDrain.datagram("é".repeat(2000), 2048)
    assert.strictEqual(bytes.length, 2048)
    assert.strictEqual(SyslogDrain.datagram("abc", 2048).toString(), "abc")
    const odd = SyslogDrain.datagram(`x${"é".repeat(2000)}`, 2048)
    assert.strictEqual(odd.length, 2047)
    assert.isFalse(odd.toString("utf8").includes("\ufffd"))
  })
})

describe("stdout drain", () => {
  it("writes one line per packet in each format", () => {
    const p = packet("hello\nworld", { severity: 3, facility: 16 })
    assert.strictEqual(Stdout.formatLine(p, "text"), "2024-01-02T03:04:05.678Z api.default[api-7d9f]: hello\\nworld\n")
    assert.deepStrictEqual(JSON.parse(Stdout.formatLine(p, "json")), {
      time: "2024-01-02T03:04:05.678Z",
      hostname: "api.default",
      tag: "api-7d9f",
      severity: 3,
      facility: 16,
      message: "hello\nworld"
    })
    assert.strictEqual(Stdout.formatLine(p, "rfc5424"), "<131>1 2024-01-02T03:04:05.678Z api.default api-7d9f - - - hello\\nworld\n")
  })

  it.live("survives a broken pipe: the failure is counted, the process goes on", () =>
    Effect.gen(function*() {
      const broken = new Writable({ write: (_chunk, _encoding, callback) => callback(new Error("EPIPE: broken pipe")) })
      const url = DrainUrl.parse("stdout://")
      if (Result.isFailure(url) || url.success._tag !== "Stdout") return assert.fail("stdout:// parses")
      const sink = yield* Stdout.make(url.success).pipe(Effect.provideService(Stdout.StdoutStream, broken))
      const handle = yield* DrainRunner.make({ display: "stdout://", kind: "Stdout", sink }).pipe(
        Effect.provideService(DrainSink.DrainSettings, {
          ...DrainSink.defaultSettings,
          retryBaseDelay: Duration.millis(10),
          flushTimeout: Duration.millis(50)
        })
      )
      handle.offer(packet("lost"))
      yield* Effect.sleep("100 millis")
      assert.isAtLeast(handle.stats.errors, 2)
      assert.strictEqual(handle.stats.sent, 0)
    }))
})

describe("Drains", () => {
  it.live("opens a drain that cannot work here (persistent:// without storage), which drops what it gets as unsupported, with one warning", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        Drains.layer.pipe(Layer.provide(Logger.layer([Logger.map(Logger.formatLogFmt, (line) => {
          logs.push(line)
        })]))),
        scope
      )
      const drains = Context.get(context, Drains)
      const drain = yield* drains.open("persistent://hunter2-key")
      for (let i = 0; i < 10; i++) drain.offer(packet(`m${i}`))
      yield* Effect.sleep("100 millis")
      assert.strictEqual(drain.stats.dropped.unsupported, 10)
      assert.strictEqual(drain.kind, "Persistent")
      yield* Scope.close(scope, Exit.void)
      const warnings = logs.filter((l) => l.includes("level=WARN"))
      assert.strictEqual(warnings.filter((l) => l.includes("cannot be opened")).length, 1, logs.join("\n"))
      assert.include(warnings.join("\n"), "persistent storage is not configured (PERSISTENT=true and PERSISTENT_DATABASE_URL)")
    }))
})

describe("every drain kind's errors, as the registry makes them", () => {
  it.effect("show none of its URL's secrets, even when the kind itself lets one through, whole or cut", () =>
    Effect.gen(function*() {
      const url = "https://admin:pa55-word@collector.local/hooks/T0KEN-SEGMENT?token=qu3ry-value"
      const parsed = DrainUrl.parse(url)
      assert.isTrue(Result.isSuccess(parsed))
      if (!Result.isSuccess(parsed)) return
      const careless: DrainSink.DrainSink = {
        sender: Effect.succeed({
          send: (batch) =>
            batch[0]!.message === "fail"
              ? Effect.fail(
                new DrainError({
                  reason: "Rejected",
                  drain: parsed.success.display,
                  code: "pa55-word",
                  // The end of an excerpt cut in the middle of a secret.
                  detail: `receiver said: T0KEN-SEGMENT qu3ry-value ${encodeURIComponent("pa55-word")} and pa55-w…`
                })
              )
              : Effect.succeed({ rejected: new Map([["qu3ry-value", 1], ["mapper_parsing_exception", 2]]), example: "got T0KEN-SEGMENT" })
        })
      }
      const sender = yield* (yield* masked(parsed.success, Effect.succeed(careless))).sender
      const error = yield* Effect.flip(sender.send([packet("fail")]))
      for (const secret of ["pa55", "T0KEN", "qu3ry"]) assert.notInclude(`${error.message} ${error.code}`, secret)
      assert.strictEqual(error.code, "other")
      const report = yield* sender.send([packet("ok")])
      assert.deepStrictEqual(report && [...report.rejected], [["other", 1], ["mapper_parsing_exception", 2]])
      assert.strictEqual(report && report.example, "got ***")
    }))
})
