// A tiny authoritative DNS server for tests (UDP on 127.0.0.1): answers SRV
// and A queries from a table the test changes while it runs.

import dgram from "node:dgram";

/** Records by name (lower case, no trailing dot). */
export interface DnsTable {
  srv: Map<string, { port: number; target: string }[]>;
  a: Map<string, string[]>;
}

function readName(buf: Uint8Array, at: number): [string, number] {
  const labels: string[] = [];
  let i = at;
  for (let n = 0; n < 128; n++) {
    const len = buf[i]!;
    if (len === 0) return [labels.join(".").toLowerCase(), i + 1];
    labels.push(new TextDecoder().decode(buf.subarray(i + 1, i + 1 + len)));
    i += 1 + len;
  }
  throw new Error("name too long");
}

function writeName(name: string): number[] {
  const out: number[] = [];
  for (const label of name.split(".").filter(Boolean)) {
    const b = new TextEncoder().encode(label);
    out.push(b.length, ...b);
  }
  out.push(0);
  return out;
}

const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];

/** The answer to `query` from `table`. */
export function answer(query: Uint8Array, table: DnsTable): Uint8Array {
  const [name, end] = readName(query, 12);
  const qtype = (query[end]! << 8) | query[end + 1]!;
  const question = [...query.subarray(12, end + 4)];
  const rrs: number[][] = [];
  if (qtype === 33) {
    for (const r of table.srv.get(name) ?? []) {
      const rdata = [...u16(0), ...u16(1), ...u16(r.port), ...writeName(r.target)];
      rrs.push([0xc0, 12, ...u16(33), ...u16(1), 0, 0, 0, 1, ...u16(rdata.length), ...rdata]);
    }
  } else if (qtype === 1) {
    for (const ip of table.a.get(name) ?? []) {
      const rdata = ip.split(".").map(Number);
      rrs.push([0xc0, 12, ...u16(1), ...u16(1), 0, 0, 0, 1, ...u16(4), ...rdata]);
    }
  }
  const found = rrs.length > 0 || table.srv.has(name) || table.a.has(name);
  const header = [
    query[0]!,
    query[1]!,
    0x84, // response, authoritative
    found ? 0x00 : 0x03, // NOERROR or NXDOMAIN
    ...u16(1),
    ...u16(rrs.length),
    ...u16(0),
    ...u16(0),
  ];
  return new Uint8Array([...header, ...question, ...rrs.flat()]);
}

/** Starts the server; `table` may change at any time. */
export async function startDnsServer(table: DnsTable): Promise<{
  port: number;
  queries: number;
  close(): Promise<void>;
}> {
  const sock = dgram.createSocket("udp4");
  const state = { port: 0, queries: 0, close: () => Promise.resolve() };
  sock.on("message", (msg: Uint8Array, rinfo: { port: number; address: string }) => {
    state.queries++;
    try {
      sock.send(answer(new Uint8Array(msg), table), rinfo.port, rinfo.address);
    } catch { /* a malformed query: no answer */ }
  });
  await new Promise<void>((resolve) => sock.bind(0, "127.0.0.1", () => resolve()));
  state.port = sock.address().port;
  state.close = () => new Promise<void>((resolve) => sock.close(() => resolve()));
  return state;
}
