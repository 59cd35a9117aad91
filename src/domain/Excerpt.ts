/**
 * Short excerpts of what receivers answer, safe to show in logs and error messages. A receiver may
 * echo what it was sent — an `Authorization` header, the URL with its token — so an excerpt never
 * shows a receiver's words verbatim: JSON escapes are undone and percent-escapes decoded (a URL
 * comes back encoded however its parser chose, maybe inside JSON), secrets known to the drain are masked, in every form they may come back in (as
 * written, JSON- or HTML-escaped, `+` for spaces), then anything that looks like a credential; only
 * then is the text shortened, so a secret is never cut in two with its first half left showing.
 */

/** The longest excerpt shown. */
export const MAX_EXCERPT = 200

/** Known secrets shorter than this are not searched for: masking every `a` would garble the text. */
const MIN_SECRET = 3

/** How much of a long text is looked at: an excerpt shows only its start. */
const SCANNED = 16 * 1024

const MASK = "***"

/** Credential-looking pieces of text, and how each is masked. */
const PATTERNS: ReadonlyArray<readonly [RegExp, string]> = [
  // A header, or a JSON/form field, whose name says it holds a credential: the whole value.
  [
    /((?:proxy-)?authori[sz]ation|cookie|x-api-key|api[-_]?key|apikey|access[-_]?token|refresh[-_]?token|token|secret|password|passwd|pwd|credentials?|signature|sig)(\\?["']?\s*[:=]\s*\\?["']?)[^"'\r\n&,;}]*/gi,
    `$1$2${MASK}`
  ],
  // An authorization scheme and its parameters.
  [/\b(Bearer|Basic|ApiKey|Token|Digest|Negotiate|NTLM|AWS4-HMAC-SHA256)(\s+)[^\s"',;}]+/gi, `$1$2${MASK}`],
  // A URL's user info.
  [/([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\s/"'<>@]*@/g, `$1${MASK}@`],
  // Long runs of base64, base64url or hex with digits and letters: tokens, keys, signatures.
  [/(?<![A-Za-z0-9+/_=-])(?=[A-Za-z0-9+/_=-]*[0-9])(?=[A-Za-z0-9+/_=-]*[A-Za-z])[A-Za-z0-9+/_-]{20,}={0,2}/g, MASK],
  [/(?<![0-9A-Fa-f])(?=[0-9A-Fa-f]*[0-9])[0-9A-Fa-f]{16,}(?![0-9A-Fa-f])/g, MASK]
]

/** The forms a secret may be echoed in. */
const formsOf = (secret: string): Array<string> => {
  const forms = new Set([
    secret,
    JSON.stringify(secret).slice(1, -1),
    htmlEscaped(secret),
    secret.replace(/\s+/g, " "),
    secret.replace(/ /g, "+")
  ])
  return [...forms].filter((form) => form.length >= MIN_SECRET)
}

const escapedForms = (secret: string): Array<string> => {
  try {
    return [encodeURIComponent(secret), encodeURI(secret)]
  } catch {
    return [] // a lone surrogate: no escaped form
  }
}

const htmlEscaped = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;")

/** `text` with every run of percent-escapes that decodes as UTF-8 decoded. */
export const percentDecoded = (text: string): string =>
  text.includes("%")
    ? text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run)
      } catch {
        return run
      }
    })
    : text

/**
 * `text` with JSON's string escapes undone (`\\`, `\"`, `\/`, `\n`…, `\uXXXX`): a receiver may
 * put a percent-encoded URL inside JSON, which escapes what the URL left as it was (a backslash in
 * a query), so the secret is found in no single form until both are undone, JSON's first.
 */
export const jsonUnescaped = (text: string): string =>
  text.includes("\\")
    ? text.replace(/\\(?:(["\\/])|([bfnrt])|u([0-9A-Fa-f]{4}))/g, (_, plain: string | undefined, control: string | undefined, hex: string | undefined) =>
      plain ?? (control !== undefined ? CONTROLS[control]! : String.fromCharCode(Number.parseInt(hex!, 16))))
    : text

const CONTROLS: Record<string, string> = { b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" }

/** `text` with every occurrence of each form masked (forms longest first). */
const maskForms = (text: string, forms: ReadonlyArray<string>): string => {
  let masked = text
  for (const form of forms) {
    if (masked.includes(form)) masked = masked.split(form).join(MASK)
  }
  return masked
}

/**
 * `text` (percent-decoded) with every occurrence of each secret (in every form) masked, longest
 * first; then, where JSON escapes are left, again with them undone (a secret echoed inside JSON of
 * a percent-encoded URL shows in no form before both are undone; one echoed as it is, with a
 * backslash of its own, is masked before JSON's escapes are undone).
 */
export const maskSecrets = (text: string, secrets: ReadonlyArray<string>): string => {
  if (secrets.length === 0) return percentDecoded(text)
  const forms = secrets.flatMap(formsOf).toSorted((a, b) => b.length - a.length)
  const masked = maskForms(percentDecoded(text), forms)
  return masked.includes("\\") ? maskForms(jsonUnescaped(masked), forms) : masked
}

/**
 * `text` as it may be shown, after it has been cut to some length elsewhere: besides whole
 * secrets, a start of one at its very end (what a cut leaves) is masked too.
 */
export const maskSecretsInCut = (text: string, secrets: ReadonlyArray<string>): string => {
  let masked = maskSecrets(text, secrets)
  const ellipsis = masked.endsWith("…") ? "…" : ""
  const body = ellipsis === "" ? masked : masked.slice(0, -1)
  // The cut may also have split an escape (`%4`), so the escaped forms are looked for too.
  for (const form of secrets.flatMap((secret) => [...formsOf(secret), ...escapedForms(secret)])) {
    for (let n = Math.min(form.length - 1, body.length); n >= MIN_SECRET; n--) {
      if (body.endsWith(form.slice(0, n))) {
        masked = `${body.slice(0, body.length - n)}${MASK}${ellipsis}`
        return masked
      }
    }
  }
  return masked
}

/** Anything that looks like a credential, masked. */
export const maskCredentials = (text: string): string => {
  let masked = text
  for (const [pattern, replacement] of PATTERNS) masked = masked.replace(pattern, replacement)
  return masked
}

/**
 * A one-line excerpt of a receiver's answer (or of any text from outside): secrets and
 * credential-looking pieces masked, whitespace runs made one space, at most `max` characters.
 */
export const excerpt = (text: string, secrets: ReadonlyArray<string> = [], max = MAX_EXCERPT): string => {
  let masked: string
  if (text.length > SCANNED) {
    // The end of the window may hold the start of something only whole is recognized as a secret:
    // it goes, in case the whitespace before it shrinks enough for it to show.
    masked = maskCredentials(maskSecretsInCut(text.slice(0, SCANNED), secrets)).slice(0, -64)
  } else {
    masked = maskCredentials(maskSecrets(text, secrets))
  }
  const line = masked.replace(/\s+/g, " ").trim()
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}
