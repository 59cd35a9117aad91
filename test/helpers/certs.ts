/**
 * Test certificates, made with openssl when first asked for: a CA, a server certificate it signs
 * (for localhost and 127.0.0.1), a client certificate it signs, and a second, unrelated CA (to
 * show that a wrong CA is refused). EC P-256 keys, valid two days.
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

const makeLeaf = (dir: string, name: string, ca: string, extensions: string) => {
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name === "server" ? "localhost" : "logtrain test client"}`], dir)
  writeFileSync(join(dir, `${name}.ext`), extensions)
  openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`], dir)
}

export const certificates = (): Certificates => {
  if (made !== undefined) return made
  const dir = mkdtempSync(join(tmpdir(), "logtrain-certs-"))
  makeCa(dir, "ca")
  makeCa(dir, "other-ca")
  makeLeaf(dir, "server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
  makeLeaf(dir, "client", "ca", "extendedKeyUsage=clientAuth\n")
  const read = (file: string) => readFileSync(join(dir, file), "utf8")
  made = {
    dir,
    ca: read("ca.pem"),
    serverCert: read("server.pem"),
    serverKey: read("server.key"),
    clientCert: read("client.pem"),
    clientKey: read("client.key"),
    otherCa: read("other-ca.pem"),
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
