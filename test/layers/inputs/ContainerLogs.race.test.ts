/**
 * A copytruncate that falls between two steps of one look. The writer (another process) runs
 * whenever it likes: here it is made to run at the worst moment, deterministically — right after
 * the input has read a chunk and checked that the file still begins as the generation it follows.
 * A look that then took the generation's fingerprint from the file again would take the next
 * generation's first bytes: the copy of the one it was reading would never be found and the rest
 * of it lost (found by the copytruncate test under CPU starvation: 1000-9000 of 10,000 lines lost
 * in 5 of 8 runs, most of them counted nowhere).
 */
import { assert, describe, it } from "@effect/vitest"
import { vi } from "vitest"
import { Duration, Effect } from "effect"
import { appendFileSync, copyFileSync, fstatSync, statSync, truncateSync } from "node:fs"
import * as Files from "../../../src/layers/inputs/containers/files.ts"
import { harness, options } from "../../helpers/ContainerHarness.ts"
import { waitUntil } from "../../helpers/eventually.ts"
import * as NodeLayout from "../../helpers/NodeLayout.ts"

/** Runs once, the first time the input checks a file of at least `size` bytes, after the check. */
let writer: { readonly size: number; readonly run: () => void } | undefined
/** Runs once, the first time the input looks for copies of a file of at least `size` bytes, after the search. */
let copier: { readonly size: number; readonly run: () => void } | undefined

vi.mock(import("../../../src/layers/inputs/containers/files.ts"), async (importOriginal) => {
  const original = await importOriginal()
  return {
    ...original,
    matches: (fd: number, print: Files.Fingerprint) => {
      const result = original.matches(fd, print)
      if (writer !== undefined && fstatSync(fd).size >= writer.size) {
        const run = writer.run
        writer = undefined
        run()
      }
      return result
    },
    rotatedSince: (...args: Parameters<typeof original.rotatedSince>) => {
      const result = original.rotatedSince(...args)
      if (copier !== undefined && (statSync(args[0], { throwIfNoEntry: false })?.size ?? 0) >= copier.size) {
        const run = copier.run
        copier = undefined
        run()
      }
      return result
    }
  }
})

const lines = (from: number, count: number) => Array.from({ length: count }, (_, i) => NodeLayout.criLine(from + i)).join("")

describe("container log input, a copytruncate between two steps of a look", () => {
  it.live("the rest of the generation being read is found in its copy, then the new one is read: nothing lost", () =>
    Effect.gen(function*() {
      const dirs = NodeLayout.make()
      yield* Effect.addFinalizer(() => Effect.sync(dirs.remove))
      const { file } = dirs.container("api-5d8f7c-x2x9q", "shop")
      const { messages, start } = yield* harness()
      yield* start(options(dirs))
      // Two short lines: the generation's fingerprint is taken while the file is shorter than one.
      appendFileSync(file, lines(0, 2))
      yield* waitUntil(() => messages("api.shop").length >= 2, Duration.seconds(5), () => `${messages("api.shop").length} of 2`)
      const read = Buffer.byteLength(lines(0, 10))
      writer = {
        size: read,
        run: () => {
          // Lines 10-14, then logrotate's copytruncate, then the runtime writes on at the start (more than a fingerprint, less than was read).
          appendFileSync(file, lines(10, 5))
          copyFileSync(file, `${file}.1`)
          truncateSync(file, 0)
          appendFileSync(file, lines(100, 8))
        }
      }
      appendFileSync(file, lines(2, 8))
      const want = [...NodeLayout.lines(0, 15), ...NodeLayout.lines(100, 8)]
      yield* waitUntil(() => messages("api.shop").length >= want.length, Duration.seconds(5), () => `${JSON.stringify(messages("api.shop"))}`)
      yield* Effect.sleep("300 millis")
      assert.isUndefined(writer, "the writer ran")
      assert.deepStrictEqual(messages("api.shop"), want)
    }), 30_000)

  it.live("a file that was empty when followed, copied and truncated between the look for its copies and its first read: the copy is read first", () =>
    Effect.gen(function*() {
      const dirs = NodeLayout.make()
      yield* Effect.addFinalizer(() => Effect.sync(dirs.remove))
      const { file } = dirs.container("api-5d8f7c-x2x9q", "shop")
      const { messages, start } = yield* harness()
      yield* start(options(dirs))
      yield* Effect.sleep("300 millis") // the empty file looked at: no first bytes to know it by
      copier = {
        size: 1,
        run: () => {
          // logrotate's copytruncate, then the runtime writes on, before the look reads anything.
          copyFileSync(file, `${file}.1`)
          truncateSync(file, 0)
          appendFileSync(file, lines(100, 8))
        }
      }
      appendFileSync(file, lines(0, 5))
      const want = [...NodeLayout.lines(0, 5), ...NodeLayout.lines(100, 8)]
      yield* waitUntil(() => messages("api.shop").length >= want.length, Duration.seconds(5), () => `${JSON.stringify(messages("api.shop"))}`)
      yield* Effect.sleep("300 millis")
      assert.isUndefined(copier, "the copier ran")
      assert.deepStrictEqual(messages("api.shop"), want)
    }), 30_000)
})
