/**
 * Those waiting for a drain's buffer to have room — routers that wait rather than drop
 * (DRAIN_WHEN_FULL=block) and files' backlog feeds — each until the depth falls to its level, or
 * the drain closes (then they are told no).
 */
import { Effect } from "effect"

export class RoomWaiters {
  private readonly waiters: Array<{ readonly level: number; readonly wake: () => void }> = []
  private readonly depth: () => number
  private readonly closing: () => boolean
  constructor(depth: () => number, closing: () => boolean) {
    this.depth = depth
    this.closing = closing
  }

  get size(): number {
    return this.waiters.length
  }

  /** Wakes those whose level the depth has reached (all of them once the drain closes). */
  wake(): void {
    const closing = this.closing()
    const depth = this.depth()
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i]!
      if (closing || depth <= waiter.level) {
        this.waiters.splice(i, 1)
        waiter.wake()
      }
    }
  }

  /** Wakes everyone (they look again: the drain started failing). */
  wakeAll(): void {
    const waiters = this.waiters.splice(0)
    for (const waiter of waiters) waiter.wake()
  }

  /** Until the depth is at most `level`: true, or false if the drain closes. */
  untilAtMost(level: number): Effect.Effect<boolean> {
    return Effect.callback<boolean>((resume) => {
      if (this.depth() <= level || this.closing()) return resume(Effect.succeed(!this.closing()))
      const waiter = { level, wake: () => resume(Effect.succeed(!this.closing())) }
      this.waiters.push(waiter)
      return Effect.sync(() => {
        const at = this.waiters.indexOf(waiter)
        if (at >= 0) this.waiters.splice(at, 1)
      })
    })
  }
}
