/**
 * TLS settings shared by the TLS-speaking transports (syslog over TLS, HTTPS): what a client
 * trusts and checks. The connections themselves are tcp.ts's and the HTTP client's.
 */
import { X509Certificate } from "node:crypto"
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

/**
 * Checks a TLS server's material before serving with it: that the key and certificate are PEM
 * and belong together, that the CA (if any) is PEM. Returns what is wrong, or warnings — such as
 * a `serverName` the certificate does not cover, which clients that check it will refuse.
 */
export const checkServerMaterial = (material: {
  readonly key: string
  readonly cert: string
  readonly ca?: string | undefined
  readonly serverName?: string | undefined
}): { readonly error: string } | { readonly warnings: ReadonlyArray<string> } => {
  try {
    Tls.createSecureContext({ key: material.key, cert: material.cert, ca: material.ca })
  } catch (error) {
    return { error: (error as Error).message }
  }
  const warnings: Array<string> = []
  if (material.serverName !== undefined && material.serverName !== "") {
    const cert = new X509Certificate(material.cert)
    const covered = Net.isIP(material.serverName) !== 0
      ? cert.checkIP(material.serverName) !== undefined
      : cert.checkHost(material.serverName) !== undefined
    if (!covered) warnings.push(`the certificate is not valid for ${material.serverName}`)
  }
  return { warnings }
}
