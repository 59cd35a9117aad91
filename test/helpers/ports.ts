/** Ports nobody listens on right now, for processes a test starts. */
import * as Net from "node:net"

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })

export const freePorts = async (n: number): Promise<Array<number>> => {
  const ports = new Set<number>()
  while (ports.size < n) ports.add(await freePort())
  return [...ports]
}

/**
 * Ports below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768–60999 by default)
 * that nothing listens on right now. `freePort`'s ports come from the ephemeral range, where any
 * other process's `listen(0)` or outgoing connection may take one a moment later (two benchmarks
 * running at once each "lost" every line that way: one's sink took the other's port); these are
 * never handed out so, and picked at random among 12,000.
 */
export const privatePorts = async (n: number): Promise<Array<number>> => {
  const ports = new Set<number>()
  while (ports.size < n) {
    const port = 20000 + Math.floor(Math.random() * 12000)
    if (!ports.has(port) && await listenable(port)) ports.add(port)
  }
  return [...ports]
}

/** Ports for a drain that must stay down for a whole run: `privatePorts`, which nobody else is handed. */
export const deadPorts = privatePorts

const listenable = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = Net.createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })
