#!/usr/bin/env node
// logtail, the central recent-logs buffer and live tails. Needs Node >= 22.19 (it runs the TypeScript sources directly).
import { tuneV8 } from "./v8-flags.js"
import { run } from "../src/programs/logtail.ts"

tuneV8()
run()
