#!/usr/bin/env node
// logtrain, the node agent. Needs Node >= 22.19 (it runs the TypeScript sources directly).
import { sizeHeap, tuneV8 } from "./v8-flags.js"

// Before the program is loaded: it may start the process again with a heap sized for its limit.
sizeHeap()
tuneV8()
const { run } = await import("../src/programs/logtrain.ts")
run()
