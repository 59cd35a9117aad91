/**
 * Drain URLs with secrets in every place a URL can hold one — user, password, a query value, a
 * path segment — made of any printable characters (the URL-special ones often), for the property
 * tests of redaction. Secrets are written in the URL as a person would: as they are, escaping only
 * what would otherwise end their part of the URL (a `/` in a password, a `&` in a query value…), or
 * wholly percent-encoded.
 */
import * as fc from "fast-check"

export interface SecretUrl {
  readonly url: string
  readonly scheme: string
  /** The secrets as they are (not as written in the URL). */
  readonly secrets: ReadonlyArray<string>
  readonly user: string
  readonly password: string
}

/** Characters that mean something in a URL, or in the text around one. */
const SPECIAL = [..."@:/?#&=%+;, \"'\\<>[]{}|^`~!$*()"]

const char = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...SPECIAL) },
  { weight: 6, arbitrary: fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 }) }
)

/**
 * A secret: 8 to 20 printable characters, at least 4 of them different (eight spaces are no
 * secret, and any text may hold them).
 */
export const secret = fc.string({ unit: char, minLength: 8, maxLength: 20 }).filter((s) => new Set(s).size >= 4 && s.trim() !== "")

/** Escapes in `text` only the characters in `these` (and `%`, so the secret reads back as itself). */
const escape = (text: string, these: string) =>
  [...text].map((c) => (c === "%" || these.includes(c) ? encodeURIComponent(c) : c)).join("")

/**
 * User info escaped as the rule asks (README, Drain URLs): `/` always, `:` in the user, and an `@`
 * that a host name and `/ ? #` follow, which would read as the end of the user info.
 */
/**
 * An `@` in user info that a host name (and port) and `/ ? #` follow would end it (README: it must
 * be escaped). Checked across the whole user info: a host in the user name may take its port from
 * the password (`@h.example` + `:` + `0?…`).
 */
const escapeHostAts = (userInfo: string) =>
  userInfo.replace(/@(?=(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]+)(?::[0-9]{1,5})?[/?#])/g, "%40")

export const secretUrl = (schemes: ReadonlyArray<string>, host: fc.Arbitrary<string> = fc.constant("drain.example.net:9443")) =>
  fc.record({
    scheme: fc.constantFrom(...schemes),
    host,
    user: secret,
    password: secret,
    query: secret,
    segment: secret,
    encoded: fc.boolean(),
    auth: fc.constantFrom("", "&auth=bearer", "&auth=apikey", "&auth=basic")
  }).map(({ auth, encoded, host, password, query, scheme, segment, user }): SecretUrl => {
    const e = (text: string, these: string) => (encoded ? encodeURIComponent(text) : escape(text, these))
    // A user name ends at the first `:`; a password at the `@` a host follows — so a `/` anywhere,
    // a `:` in the user and an `@` followed by a host name and `/ ? #` must be escaped; a path segment ends at `/ ? #` (and `\`
    // for http); a query value at `& #`.
    const userInfo = encoded ? `${e(user, "")}:${e(password, "")}` : escapeHostAts(`${escape(user, "/:")}:${escape(password, "/")}`)
    const path = `/${e(segment, "/?#\\")}/_bulk`
    const url = `${scheme}://${userInfo}@${host}${path}?token=${e(query, "&#+")}&insecure=true${scheme.startsWith("es") ? auth : ""}`
    return { url, scheme, secrets: [user, password, query, segment], user, password }
  })

/** The forms in which a secret could show if it leaked: as is, percent-encoded, JSON- or Prometheus-escaped. */
export const leakedForms = (secret: string): ReadonlyArray<string> => {
  const forms = new Set([secret, JSON.stringify(secret).slice(1, -1), secret.replace(/\\/g, "\\\\").replace(/"/g, "\\\"")])
  try {
    forms.add(encodeURIComponent(secret))
  } catch {
    // a lone surrogate cannot be encoded
  }
  return [...forms]
}

/**
 * The pieces of a secret a confused parser would show: it cut where a URL delimiter is. Six
 * characters or more, so they are the secret's, not words any text has.
 */
export const piecesOf = (secret: string): ReadonlyArray<string> =>
  secret.split(/[@:/?#&=%+\\ ]/).filter((piece) => piece.length >= 6)

/**
 * The first leak of any secret in `texts`: a secret in any form, or a piece of one — unless it
 * also shows in `baseline` (the same texts made with other secrets: words of their own).
 */
export const findLeak = (texts: ReadonlyArray<string>, secrets: ReadonlyArray<string>, baseline = ""): string | undefined => {
  // Also as a URL would carry them, percent-encoded however a URL parser chose to.
  const shown = texts.join("\n")
  const all = `${shown}\n${percentDecoded(shown)}`
  for (const secret of secrets) {
    for (const form of leakedForms(secret)) {
      if (all.includes(form) && !baseline.includes(form)) return `secret ${JSON.stringify(secret)} shows as ${JSON.stringify(form)}`
    }
    for (const piece of piecesOf(secret)) {
      if (all.includes(piece) && !baseline.includes(piece)) return `piece ${JSON.stringify(piece)} of secret ${JSON.stringify(secret)} shows`
    }
  }
  return undefined
}

/** `text` with every run of percent-escapes that is UTF-8 decoded. */
const percentDecoded = (text: string): string =>
  text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run)
    } catch {
      return run
    }
  })
