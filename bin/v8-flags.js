// V8 settings shared by logtrain's programs; each calls `tuneV8` before it starts.
import { setFlagsFromString } from "node:v8"

// V8 may decide that objects made at a busy allocation site live long and make them in the old
// generation from then on ("pretenuring"). For a router, whose packets live for milliseconds, that
// fills the old generation with garbage: the TCP relay ran at 0.53-0.57M lines/s and peaked at
// 142-148 MB with it, 0.86-0.92M and 96-98 MB without (npm run bench -- --only relay). Whether V8
// makes that decision depends on what else is in the heap, so it is turned off for good. (A GC
// heuristic, read when it is applied; Node refuses the flag in NODE_OPTIONS.)
export const tuneV8 = () => setFlagsFromString("--no-allocation-site-pretenuring")
