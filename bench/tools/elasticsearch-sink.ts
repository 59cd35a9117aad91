/**
 * The Elasticsearch stand-in (test/helpers/FakeElasticsearch.ts: Elasticsearch 8's `_bulk`, whole
 * answers at real sizes) as a sink for benchmarks: counts documents indexed and reports the count
 * on stdout every 50 ms (and once more when stdin closes), as count-sink.ts does for lines. Keeps
 * ids only (a document indexed twice is answered 409 and not counted), not sources.
 *
 *   node bench/tools/elasticsearch-sink.ts <port>
 */
import * as FakeElasticsearch from "../../test/helpers/FakeElasticsearch.ts"

const es = await FakeElasticsearch.listen({ keep: false, port: Number(process.argv[2]) })
process.stdout.write("ready\n")
let last = -1
setInterval(() => {
  if (es.count() !== last) process.stdout.write(`${(last = es.count())}\n`)
}, 50)
process.stdin.on("end", () => {
  process.stdout.write(`${es.count()}\n`)
  process.exit(0)
})
process.stdin.resume()
