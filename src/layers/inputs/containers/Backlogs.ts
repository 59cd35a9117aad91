/**
 * Feeding drains their backlog from disk. A drain that was full is parked on each file whose
 * packets it could not take (receipts.ts: park); one fiber per drain waits until it has room
 * again, then reads each of those files again for it, in turn, a chunk at a time, until it is
 * full again, or caught up with every file — and then ends.
 *
 * So a drain that is down costs its backlog on disk, not memory, and holds back only the files
 * routed to it: the heads of the files go on for every other drain.
 */
import { Clock, Effect, FiberSet } from "effect"
import { backlogBytes, feedBacklog } from "./behind.ts"
import type { FileFollower } from "./FileFollower.ts"
import type { Behind } from "./receipts.ts"

/** Most chunks read for one file before the next file of the same drain has its turn. */
const TURN = 16

export const make = Effect.fnUntraced(function*() {
  // Parking happens on the router's synchronous path: feeders are started without an Effect there.
  const run = yield* FiberSet.makeRuntime<never, void>()
  /** Files each drain is behind on. */
  const parked = new Map<string, Map<Behind, FileFollower>>()

  const feed = (endpoint: string): Effect.Effect<void> =>
    Effect.gen(function*() {
      while (true) {
        const files = parked.get(endpoint)
        if (files === undefined || files.size === 0) {
          parked.delete(endpoint)
          return
        }
        const [first] = files.keys()
        // False: the drain closes, or the route is gone; each file finds out which when it offers.
        yield* first!.feed.whenRoom
        let full = false
        for (const [behind, follower] of files) {
          for (let turn = 0; turn < TURN && !full; turn++) {
            const now = yield* Clock.currentTimeMillis
            const step = feedBacklog(follower, behind, now)
            if (step === "full") full = true
            else if (step !== "more") {
              files.delete(behind)
              break
            }
          }
          if (full) break
          yield* Effect.yieldNow
        }
      }
    })

  /** `behind` of `follower` needs feeding (it was just parked, or parked again). Synchronous. */
  const add = (follower: FileFollower, behind: Behind): void => {
    let files = parked.get(behind.endpoint)
    const running = files !== undefined
    if (files === undefined) {
      files = new Map()
      parked.set(behind.endpoint, files)
    }
    files.set(behind, follower)
    if (!running) run(feed(behind.endpoint))
  }

  /** Bytes drains are behind, over every file. */
  const bytes = (): number => {
    let total = 0
    for (const files of parked.values()) for (const [behind, follower] of files) total += backlogBytes(follower, behind)
    return total
  }

  return { add, bytes, files: () => parked }
})
