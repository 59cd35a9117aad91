#!/usr/bin/env node
// logtrain, the node agent. Needs Node >= 22.19 (it runs the TypeScript sources directly).
import { tuneV8 } from "./v8-flags.js"
import { run } from "../src/programs/logtrain.ts"

tuneV8()
run()
