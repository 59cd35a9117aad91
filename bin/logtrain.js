#!/usr/bin/env node
// logtrain, the node agent. Needs Node >= 22.19 (it runs the TypeScript sources directly).
import { run } from "../src/programs/logtrain.ts"

run()
