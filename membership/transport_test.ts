import { MemoryNetwork, type MemoryTransport, testTransport } from "../testing.ts";
import { TcpTransport } from "./mod.ts";

testTransport("tcp", {
  transport: () => new TcpTransport(),
  listenAddr: () => ({ hostname: "127.0.0.1", port: 0 }),
});

let host = 0;
const net = new MemoryNetwork({ seed: 1 });
testTransport("memory", {
  transport: () => net.transport(`host${++host}`),
  listenAddr: (t) => ({ hostname: (t as MemoryTransport).hostname, port: 0 }),
});

const latent = new MemoryNetwork({ seed: 2, latencyMs: [0, 3] });
testTransport("memory with latency", {
  transport: () => latent.transport(`host${++host}`),
  listenAddr: (t) => ({ hostname: (t as MemoryTransport).hostname, port: 0 }),
});
