#!/usr/bin/env node
// logtail, the central recent-logs buffer and live tails. Needs Node >= 22.19 (it runs the TypeScript sources directly).
import { run } from "../src/programs/logtail.ts"

run()
