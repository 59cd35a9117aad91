/**
 * TLS settings shared by the TLS-speaking transports (syslog over TLS, HTTPS): what a client
 * trusts and checks. The connections themselves are tcp.ts's and the HTTP client's.
 */
import { createPrivateKey, X509Certificate } from "node:crypto"
import * as Net from "node:net"
import * as Tls from "node:tls"

export interface ClientTls {
  /** Extra trusted CA certificates (PEM), added to the system roots, not replacing them. */
  readonly ca?: string | undefined
  /** Skip certificate verification. */
  readonly insecure?: boolean | undefined
}

/**
 * The CA certificates a client trusts with an extra one: Node's bundled roots and `ca`. (Read when
 * needed: `tls.rootCertificates`, a getter, is left out of the bundle's imports — see build.ts.)
 */
export const trustedWith = (ca: string): Array<string> => [...Tls.getCACertificates("bundled"), ca]

/** Options for `tls.connect` to `host`: verification on unless insecure; SNI for names only (RFC 6066). */
export const clientOptions = (host: string, settings: ClientTls): Tls.ConnectionOptions => ({
  rejectUnauthorized: settings.insecure !== true,
  ...(settings.ca === undefined ? {} : { ca: trustedWith(settings.ca) }),
  ...(Net.isIP(host) === 0 ? { servername: host } : {})
})

/** Which piece of a TLS server's material a problem is with. */
export type MaterialPart = "cert" | "key" | "pair" | "ca"

export type MaterialCheck =
  | { readonly error: { readonly part: MaterialPart; readonly detail: string } }
  | { readonly warnings: ReadonlyArray<{ readonly part: MaterialPart | "serverName"; readonly detail: string }> }

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g

/** The certificates of a PEM bundle, or what is wrong with it (never its content). */
const readCertificates = (pem: string): ReadonlyArray<X509Certificate> | string => {
  const blocks = pem.match(PEM_CERTIFICATE)
  if (blocks === null) return "no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)"
  const certificates: Array<X509Certificate> = []
  for (const [i, block] of blocks.entries()) {
    try {
      certificates.push(new X509Certificate(block))
    } catch (error) {
      return `certificate ${i + 1} of ${blocks.length} cannot be read: ${(error as Error).message}`
    }
  }
  return certificates
}

/** A problem with a certificate's dates now: expired is an error, not yet valid a warning. */
const dates = (certificate: X509Certificate, now: Date): { readonly error?: string; readonly warning?: string } =>
  certificate.validToDate < now
    ? { error: `${certificate.subject.replace(/\n/g, ", ")}: expired on ${certificate.validToDate.toISOString()}` }
    : certificate.validFromDate > now
    ? { warning: `${certificate.subject.replace(/\n/g, ", ")}: not valid before ${certificate.validFromDate.toISOString()}` }
    : {}

/**
 * Checks a TLS server's material before serving with it, so that what cannot work stops start-up
 * instead of failing every handshake: the certificate and key are PEM, belong together, and the
 * certificate has not expired; the CA (if any) holds at least one certificate, each readable, a
 * CA, and not expired. Warnings are for what may still work: a certificate not valid yet (clock
 * skew), a `serverName` the certificate does not cover (clients that check it will refuse).
 * Never says what the key holds.
 */
export const checkServerMaterial = (material: {
  readonly key: string
  readonly cert: string
  readonly ca?: string | undefined
  readonly serverName?: string | undefined
  readonly now?: Date | undefined
}): MaterialCheck => {
  const now = material.now ?? new Date()
  const warnings: Array<{ readonly part: MaterialPart | "serverName"; readonly detail: string }> = []
  const certs = readCertificates(material.cert)
  if (typeof certs === "string") return { error: { part: "cert", detail: certs } }
  const cert = certs[0]!
  const certDates = dates(cert, now)
  if (certDates.error !== undefined) return { error: { part: "cert", detail: certDates.error } }
  if (certDates.warning !== undefined) warnings.push({ part: "cert", detail: certDates.warning })
  try {
    createPrivateKey(material.key)
  } catch (error) {
    return { error: { part: "key", detail: `not a usable private key: ${(error as Error).message}` } }
  }
  if (material.ca !== undefined) {
    const cas = readCertificates(material.ca)
    if (typeof cas === "string") return { error: { part: "ca", detail: cas } }
    for (const ca of cas) {
      if (!ca.ca) return { error: { part: "ca", detail: `${ca.subject.replace(/\n/g, ", ")} is not a CA certificate (basicConstraints CA:TRUE)` } }
      const caDates = dates(ca, now)
      if (caDates.error !== undefined) return { error: { part: "ca", detail: caDates.error } }
      if (caDates.warning !== undefined) warnings.push({ part: "ca", detail: caDates.warning })
    }
  }
  try {
    Tls.createSecureContext({ key: material.key, cert: material.cert, ca: material.ca })
  } catch (error) {
    return { error: { part: "pair", detail: (error as Error).message } }
  }
  if (material.serverName !== undefined && material.serverName !== "") {
    const covered = Net.isIP(material.serverName) !== 0
      ? cert.checkIP(material.serverName) !== undefined
      : cert.checkHost(material.serverName) !== undefined
    if (!covered) warnings.push({ part: "serverName", detail: `the certificate is not valid for ${material.serverName}` })
  }
  return { warnings }
}
