// V8 settings shared by logtrain's programs; each calls `tuneV8` before it starts. (Read by the
// GC when it applies them; Node refuses these flags in NODE_OPTIONS.)
import { setFlagsFromString } from "node:v8"

export const tuneV8 = () => {
  // V8 may decide that objects made at a busy allocation site live long and make them in the old
  // generation from then on ("pretenuring"). For a router, whose packets live for milliseconds,
  // that fills the old generation with garbage: the TCP relay ran at 0.53-0.57M lines/s and peaked
  // at 142-148 MB with it, 0.86-0.92M and 96-98 MB without (npm run bench -- --only relay).
  // Whether V8 makes that decision depends on what else is in the heap, so it is turned off.
  setFlagsFromString("--no-allocation-site-pretenuring")
  // After each full GC, V8 lets the old generation grow by a factor it picks from how fast the GC
  // runs: with ~16 MB live it let a busy file tail grow to ~70 MB of mostly dead packets before
  // collecting. Twice what is live instead: the file tail's peak RSS 138-142 -> 109-113 MB, its
  // lines/s unchanged (npm run bench -- --only relay,files --relays logtrain, 3 rounds each).
  setFlagsFromString("--heap-growing-percent=100")
}
