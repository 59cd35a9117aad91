import { assert, describe, it } from "@effect/vitest"
import { Redacted, Result } from "effect"
import { Buffer } from "node:buffer"
import * as DrainUrl from "../../src/domain/DrainUrl.ts"

const ok = (endpoint: string): DrainUrl.DrainUrl => {
  const result = DrainUrl.parse(endpoint)
  if (Result.isFailure(result)) assert.fail(`${endpoint}: ${result.failure.message}`)
  return result.success
}

const error = (endpoint: string): DrainUrl.DrainUrlError => {
  const result = DrainUrl.parse(endpoint)
  if (Result.isSuccess(result)) assert.fail(`${endpoint} should not parse`)
  return result.failure
}

const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

describe("DrainUrl.parse", () => {
  it("reads every syslog transport with its default port and framing", () => {
    const table: ReadonlyArray<readonly [string, string, number, string]> = [
      ["syslog+tcp://logs.example.com:1514", "tcp", 1514, "newline"],
      ["syslog+tcp://logs.example.com", "tcp", 514, "newline"],
      ["syslog+udp://logs.example.com", "udp", 514, "newline"],
      ["syslog://logs.example.com:5140", "udp", 5140, "newline"],
      ["SYSLOG+TLS://logs.example.com", "tls", 6514, "octet-counting"],
      ["syslog+http://logs.example.com", "http", 80, "newline"],
      ["syslog+https://logs.example.com/in?token=abc", "https", 443, "newline"],
      ["syslog+tcp://logs.example.com:1514?framing=octet-counting", "tcp", 1514, "octet-counting"]
    ]
    for (const [endpoint, transport, port, framing] of table) {
      const url = ok(endpoint)
      assert.strictEqual(url._tag, "Syslog", endpoint)
      if (url._tag !== "Syslog") continue
      assert.deepStrictEqual([url.transport, url.host, url.port, url.framing], [transport, "logs.example.com", port, framing])
    }
    const https = ok("syslog+https://u:p@logs.example.com/in?token=abc&insecure=true&framing=octet-counting")
    assert.strictEqual(https._tag === "Syslog" && https.url, "https://u:p@logs.example.com/in?token=abc")
    const http = ok("syslog+http://logs.example.com:8080")
    assert.strictEqual(http._tag === "Syslog" && http.url, "http://logs.example.com:8080/")
  })

  it("reads an IPv6 host without brackets", () => {
    const url = ok("syslog+tcp://[::1]:9000")
    assert.strictEqual(url._tag === "Syslog" && url.host, "::1")
  })

  it("decodes the base64 CA bundle of syslog+tls, even when + became a space", () => {
    const b64 = Buffer.from(pem).toString("base64")
    const url = ok(`syslog+tls://h:6514?ca=${b64.replace(/\+/g, " ")}&insecure=false`)
    assert.strictEqual(url._tag === "Syslog" && url.ca, pem)
    assert.strictEqual(error("syslog+tls://h:6514?ca=bm90IGEgY2VydA==").reason, "InvalidOption")
  })

  it("takes the CA bundle on https and Elasticsearch drains too, and keeps it out of the request URL", () => {
    const b64 = Buffer.from(pem).toString("base64")
    const json = ok(`https://h/in?x=1&ca=${encodeURIComponent(b64)}&format=ndjson`)
    assert.strictEqual(json._tag === "Http" && json.ca, pem)
    assert.strictEqual(json._tag === "Http" && json.url, "https://h/in?x=1")
    const es = ok(`es+https://h:9200?ca=${encodeURIComponent(b64)}&index=logs`)
    assert.strictEqual(es._tag === "Elasticsearch" && es.ca, pem)
    assert.strictEqual(es._tag === "Elasticsearch" && es.bulkUrl, "https://h:9200/_bulk")
    assert.strictEqual(error("https://h/in?ca=bm90IGEgY2VydA==").reason, "InvalidOption")
    assert.strictEqual(error("es://h?ca=bm90IGEgY2VydA==").reason, "InvalidOption")
  })

  it("reads every elasticsearch alias, as the original did", () => {
    const table: ReadonlyArray<readonly [string, string]> = [
      ["es+https://es.local:9200", "https://es.local:9200/_bulk"],
      ["es+http://es.local:9200/", "http://es.local:9200/_bulk"],
      ["elasticsearch+https://es.local", "https://es.local/_bulk"],
      ["elasticsearch+http://es.local/prefix", "http://es.local/prefix/_bulk"],
      ["es://es.local", "https://es.local/_bulk"],
      ["elasticsearch://es.local/_bulk?pipeline=p", "https://es.local/_bulk?pipeline=p"]
    ]
    for (const [endpoint, bulkUrl] of table) {
      const url = ok(endpoint)
      assert.strictEqual(url._tag === "Elasticsearch" && url.bulkUrl, bulkUrl, endpoint)
    }
  })

  it("takes elasticsearch credentials as the seed README says", () => {
    const basic = ok("es+https://user:p%40ss@es.local?index=logs")
    assert.deepStrictEqual(basic._tag === "Elasticsearch" && [basic.auth._tag, basic.index], ["Basic", "logs"])
    const bearer = ok("es+https://ignored:tok@es.local?auth=bearer")
    assert.strictEqual(bearer._tag === "Elasticsearch" && bearer.auth._tag === "Bearer" && Redacted.value(bearer.auth.token), "tok")
    const apikey = ok("es+https://key-id:secret@es.local?auth=apikey&insecure=true")
    if (apikey._tag !== "Elasticsearch" || apikey.auth._tag !== "ApiKey") return assert.fail("apikey")
    assert.deepStrictEqual([apikey.auth.id, Redacted.value(apikey.auth.key), apikey.insecure], ["key-id", "secret", true])
    assert.strictEqual(basic._tag === "Elasticsearch" && Redacted.value((basic.auth as { password: Redacted.Redacted<string> }).password), "p@ss")
    const none = ok("es+https://es.local")
    assert.strictEqual(none._tag === "Elasticsearch" && none.auth._tag, "None")
    assert.strictEqual(error("es+https://u:p@es.local?auth=digest").reason, "InvalidOption")
    assert.strictEqual(error("es+https://es.local?index=Bad,Name").reason, "InvalidOption")
  })

  it("reads http drains, their insecure option and their format", () => {
    const url = ok("https://collector.local/ingest?insecure=true&x=1")
    assert.deepStrictEqual(url._tag === "Http" && [url.url, url.insecure, url.format], ["https://collector.local/ingest?x=1", true, "array"])
    const single = ok("http://collector.local/?format=single")
    assert.deepStrictEqual(single._tag === "Http" && [single.url, single.format], ["http://collector.local/", "single"])
    assert.strictEqual(error("http://collector.local/?format=xml").reason, "InvalidOption")
  })

  it("limits persistent keys to 128 characters", () => {
    const url = ok(`persistent://${"k".repeat(128)}`)
    assert.strictEqual(url._tag === "Persistent" && url.key.length, 128)
    assert.strictEqual(error(`persistent://${"k".repeat(129)}`).reason, "InvalidKey")
    assert.strictEqual(error("persistent://").reason, "InvalidKey")
    const spaced = ok("persistent://my key")
    assert.strictEqual(spaced._tag === "Persistent" && spaced.key, "my key")
  })

  it("says what is wrong with a bad URL", () => {
    assert.strictEqual(error("ftp://x").reason, "UnknownScheme")
    assert.strictEqual(error("not a url").reason, "InvalidUrl")
    assert.strictEqual(error("syslog+tcp://:514").reason, "InvalidUrl")
    assert.strictEqual(error("syslog+tcp:///just-a-path").reason, "MissingHost")
    assert.strictEqual(error("syslog+tcp://h:99999").reason, "InvalidUrl")
    assert.strictEqual(error("syslog+tcp://h:514?insecure=yes").reason, "InvalidOption")
    assert.strictEqual(error("syslog+tcp://h:514?framing=crlf").reason, "InvalidOption")
    assert.include(error("ftp://user:hunter2@x").message, "unknown scheme")
  })
})

describe("DrainUrl.redact", () => {
  it("never shows credentials, in the display form or in errors", () => {
    const secrets = ["hunter2", "tok3n", "s3cret"]
    const endpoints = [
      "es+https://admin:hunter2@es.local:9200/?index=logs",
      "https://user:hunter2@collector.local/in?token=tok3n&insecure=true",
      "syslog+https://logs.local/in?api_key=s3cret",
      "ftp://admin:hunter2@host",
      "es+https://u:hunter2@es.local?auth=digest"
    ]
    for (const endpoint of endpoints) {
      const result = DrainUrl.parse(endpoint)
      const shown = Result.isSuccess(result) ? result.success.display : `${result.failure.message} ${result.failure.endpoint}`
      for (const secret of secrets) assert.notInclude(shown, secret, endpoint)
    }
    assert.match(
      DrainUrl.redact("es+https://admin:hunter2@es.local:9200/?index=logs&auth=basic"),
      /^es\+https:\/\/\*\*\*@es\.local:9200\/\?index=logs&auth=basic#[0-9a-f]{4}$/
    )
    assert.match(DrainUrl.redact("https://c.local/in?token=tok3n"), /^https:\/\/c\.local\/\*\*\*\?token=\*\*\*#[0-9a-f]{4}$/)
    assert.strictEqual(DrainUrl.redact("syslog+tls://h:6514?ca=QUJD"), "syslog+tls://h:6514?ca=…")
    assert.strictEqual(DrainUrl.redact("syslog+tcp://logs.example.com:514?framing=octet-counting"), "syslog+tcp://logs.example.com:514?framing=octet-counting")
  })

  it("takes the user info from the raw string, so a password holding # ? or @ is neither shown nor cut", () => {
    for (const password of ["S3cretPW#x", "S3c?retPW", "S3c@retPW", "p#a?s@s:w&o=r%d"]) {
      const endpoint = `https://u:${password}@127.0.0.1:1/`
      const url = ok(endpoint)
      assert.match(url.display, /^https:\/\/\*\*\*@127\.0\.0\.1:1\/#[0-9a-f]{4}$/, password)
      // The URL means what it says: that password, sent to that host.
      const target = new URL(url._tag === "Http" ? url.url : "")
      assert.deepStrictEqual([target.host, decodeURIComponent(target.password)], ["127.0.0.1:1", password])
    }
    // The user info ends at the @ a host follows: a query may hold an @ even without a path.
    const loki = ok("https://tenant1:s3c?r@t-5@127.0.0.1:3100?tenant=a@b.example")
    const lokiTarget = new URL(loki._tag === "Http" ? loki.url : "")
    assert.deepStrictEqual([lokiTarget.host, decodeURIComponent(lokiTarget.password), lokiTarget.search], ["127.0.0.1:3100", "s3c?r@t-5", "?tenant=a@b.example"])
    const es = ok("es+http://elastic:pa#ss@es.local:9200?auth=bearer")
    assert.strictEqual(es._tag === "Elasticsearch" && es.auth._tag === "Bearer" && Redacted.value(es.auth.token), "pa#ss")
  })

  it("masks bare query tokens and every path segment, keeping host, port and the shape of the path", () => {
    const bare = ok("https://host/hook?S3cretPW")
    assert.match(bare.display, /^https:\/\/host\/\*\*\*\?\*\*\*#[0-9a-f]{4}$/)
    // The target keeps the query as written (not `?S3cretPW=`).
    assert.strictEqual(bare._tag === "Http" && bare.url, "https://host/hook?S3cretPW")
    const slack = ok("https://hooks.slack.com/services/T0001/B0001/XXXXsecretXXXX")
    assert.match(slack.display, /^https:\/\/hooks\.slack\.com\/\*\*\*\/\*\*\*\/\*\*\*\/\*\*\*#[0-9a-f]{4}$/)
    // Two drains that differ only in a secret have different names (metric series, log lines).
    const other = ok("https://hooks.slack.com/services/T0001/B0001/YYYYsecretYYYY")
    assert.notStrictEqual(slack.display, other.display)
    assert.strictEqual(ok("es+http://h:9200/_bulk?index=a").display, "es+http://h:9200/_bulk?index=a")
    // The README's examples.
    const withPath = ok("https://host/?user=me@example.com")
    assert.strictEqual(withPath._tag === "Http" && new URL(withPath.url).host, "host")
    assert.match(DrainUrl.redact("https://host?user=me@example.com"), /^https:\/\/\*\*\*@example\.com#/)
    assert.strictEqual(DrainUrl.redact("es+https://elastic:pw@es.example.com:9200/?index=logs"), "es+https://***@es.example.com:9200/?index=logs#e10b")
    assert.strictEqual(DrainUrl.redact("https://hooks.slack.com/services/T000/B000/XXXX"), "https://hooks.slack.com/***/***/***/***#84ec")
  })

  it("never throws, whatever the URL holds", () => {
    for (const endpoint of ["es+http://u:%ff@h:9200", "https://u:%zz@h/", "https://u:\ud800@h/", "es+https://%@h", "https://h/%ff?x=%ff", "otlp+http://u:p@--%25/", "loki+http://--%25"]) {
      const result = DrainUrl.parse(endpoint)
      assert.isTrue(Result.isSuccess(result) || result.failure._tag === "DrainUrlError", endpoint)
    }
    const raw = ok("es+http://u:%ff@h:9200")
    assert.strictEqual(raw._tag === "Elasticsearch" && raw.auth._tag === "Basic" && Redacted.value(raw.auth.password), "%ff")
  })

  it("shows nothing of a URL it cannot read", () => {
    const slashed = DrainUrl.parse("https://u:S3c/retPW@h/")
    assert.isTrue(Result.isFailure(slashed))
    const message = Result.isFailure(slashed) ? slashed.failure.message : ""
    for (const part of ["S3c", "retPW"]) assert.notInclude(message, part)
    assert.include(message, "%2F")
    assert.strictEqual(DrainUrl.redact("u:S3cretPW@host"), "(unparsable)")
  })

  it("names the pieces it hides, for masking receivers' answers", () => {
    const secrets = DrainUrl.secretsOf("es+https://elastic:pa%23ss@es.local/p4th?index=logs&token=t%20k#frag")
    for (const s of ["elastic", "pa#ss", "pa%23ss", "p4th", "t k", "t%20k", "frag", Buffer.from("elastic:pa#ss").toString("base64")]) {
      assert.include(secrets, s)
    }
    assert.notInclude(secrets, "logs")
  })
})
