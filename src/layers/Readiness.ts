/**
 * What /readyz reports: logtrain is ready when every input it was asked for is listening and every
 * datasource has loaded its routes once. Components register a check when they start and mark it
 * ready when they are; a check that later fails (a datasource losing its connection) can be marked
 * not ready again with a reason.
 */
import { Context, Effect, Layer, Option, Scope } from "effect"

export interface ReadinessCheck {
  readonly ready: Effect.Effect<void>
  readonly notReady: (reason: string) => Effect.Effect<void>
}

export interface ReadinessReport {
  readonly ready: boolean
  readonly checks: ReadonlyArray<{ readonly name: string; readonly ready: boolean; readonly reason: string }>
}

export class Readiness extends Context.Service<Readiness, {
  /** Adds a check, not ready until told otherwise; it is removed with the scope. */
  readonly register: (name: string) => Effect.Effect<ReadinessCheck, never, Scope.Scope>
  readonly report: Effect.Effect<ReadinessReport>
}>()("logtrain/Readiness") {
  static readonly layer = Layer.sync(Readiness, () => {
    const checks = new Map<string, { ready: boolean; reason: string }>()
    return Readiness.of({
      register: (name) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            const state = { ready: false, reason: "starting" }
            checks.set(name, state)
            return {
              ready: Effect.sync(() => {
                state.ready = true
                state.reason = ""
              }),
              notReady: (reason: string) =>
                Effect.sync(() => {
                  state.ready = false
                  state.reason = reason
                })
            } satisfies ReadinessCheck
          }),
          () => Effect.sync(() => checks.delete(name))
        ),
      report: Effect.sync(() => {
        const list = [...checks].map(([name, state]) => ({ name, ...state }))
        return { ready: list.every((check) => check.ready), checks: list }
      })
    })
  })
}

/**
 * Waits until every datasource has loaded its routes once (before that, the route table is
 * partial: a line routed then would find no route). At once without a Readiness service.
 */
export const datasourcesLoaded = Effect.gen(function*() {
  const found = yield* Effect.serviceOption(Readiness)
  if (Option.isNone(found)) return
  const loaded = Effect.map(found.value.report, (report) => report.checks.filter((c) => c.name.startsWith("datasource:")).every((c) => c.ready))
  while (!(yield* loaded)) yield* Effect.sleep("50 millis")
})
