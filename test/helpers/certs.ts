/**
 * Test certificates, made with openssl when first asked for: a CA, a server certificate it signs
 * (for localhost and 127.0.0.1), a client certificate it signs, and a second, unrelated CA (to
 * show that a wrong CA is refused). EC P-256 keys, valid two days. Plus client certificates a
 * server requiring ones from `ca` must refuse: one the other CA signed, one `ca` signed that has
 * expired, and a self-signed one.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export interface Certificates {
  readonly dir: string
  readonly ca: string
  readonly serverCert: string
  readonly serverKey: string
  readonly clientCert: string
  readonly clientKey: string
  /** A CA that signed none of the above. */
  readonly otherCa: string
  /** Client certificates (with their keys) that `ca` does not vouch for. */
  readonly refusedClients: {
    /** Signed by the other CA. */
    readonly otherCa: { readonly cert: string; readonly key: string }
    /** Signed by `ca`, expired (its validity ends before it starts). */
    readonly expired: { readonly cert: string; readonly key: string }
    readonly selfSigned: { readonly cert: string; readonly key: string }
  }
  /** Paths, for peers (rsyslog, syslog-ng) that read files. */
  readonly files: { readonly ca: string; readonly serverCert: string; readonly serverKey: string; readonly clientCert: string; readonly clientKey: string }
}

let made: Certificates | undefined

const openssl = (args: ReadonlyArray<string>, cwd: string) => execFileSync("openssl", args, { cwd, stdio: "pipe" })

const makeCa = (dir: string, name: string) => {
  openssl([
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=logtrain test ${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"
  ], dir)
}

const makeLeaf = (dir: string, name: string, ca: string, extensions: string, days = "2") => {
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name === "server" ? "localhost" : "logtrain test client"}`], dir)
  writeFileSync(join(dir, `${name}.ext`), extensions)
  // A negative number of days makes a certificate that expires a day before it starts (OpenSSL 3.0
  // has no -not_after): expired from the start.
  openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.pem`, "-days", days, "-extfile", `${name}.ext`], dir)
}

export const certificates = (): Certificates => {
  if (made !== undefined) return made
  const dir = mkdtempSync(join(tmpdir(), "logtrain-certs-"))
  makeCa(dir, "ca")
  makeCa(dir, "other-ca")
  makeLeaf(dir, "server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
  makeLeaf(dir, "client", "ca", "extendedKeyUsage=clientAuth\n")
  makeLeaf(dir, "other-ca-client", "other-ca", "extendedKeyUsage=clientAuth\n")
  makeLeaf(dir, "expired-client", "ca", "extendedKeyUsage=clientAuth\n", "-1")
  openssl([
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", "self-signed-client.key", "-out", "self-signed-client.pem", "-days", "2", "-subj", "/CN=logtrain test client"
  ], dir)
  const read = (file: string) => readFileSync(join(dir, file), "utf8")
  made = {
    dir,
    ca: read("ca.pem"),
    serverCert: read("server.pem"),
    serverKey: read("server.key"),
    clientCert: read("client.pem"),
    clientKey: read("client.key"),
    otherCa: read("other-ca.pem"),
    refusedClients: {
      otherCa: { cert: read("other-ca-client.pem"), key: read("other-ca-client.key") },
      expired: { cert: read("expired-client.pem"), key: read("expired-client.key") },
      selfSigned: { cert: read("self-signed-client.pem"), key: read("self-signed-client.key") }
    },
    files: {
      ca: join(dir, "ca.pem"),
      serverCert: join(dir, "server.pem"),
      serverKey: join(dir, "server.key"),
      clientCert: join(dir, "client.pem"),
      clientKey: join(dir, "client.key")
    }
  }
  return made
}

/** A PEM as the `ca=` option of a drain URL: base64, URL-encoded. */
export const caOption = (pem: string): string => encodeURIComponent(Buffer.from(pem).toString("base64"))
