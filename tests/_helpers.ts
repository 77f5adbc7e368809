// Test helpers: bounded waiting, node subprocesses.

import { Node, type NodeOptions } from "../mod.ts";

/** Polls `check` until it returns a truthy value; bounded in time. */
export async function eventually<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 5000,
  intervalMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < deadline && i < 100_000; i++) {
    const v = await check();
    if (v) return v;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Resolves with the next `onUp`/`onDown` of `peer` at `node`; rejects after `timeoutMs`. */
export function nextEvent(
  node: Node,
  kind: "up" | "down",
  peer: string,
  timeoutMs = 5000,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`${node.name}: no ${kind} of ${peer} within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = (kind === "up" ? node.onUp : node.onDown).call(node, peer, () => {
      clearTimeout(timer);
      off();
      resolve(Date.now());
    });
  });
}

/** Fast timings for tests on loopback. */
export const FAST: Partial<NodeOptions> = {
  gossipIntervalMs: 200,
  pingIntervalMs: 100,
  failureTimeoutMs: 600,
  reconnectBackoffMinMs: 20,
  reconnectBackoffMaxMs: 200,
  retransmitIntervalMs: 100,
  connectTimeoutMs: 2000,
};

/** Starts a node on 127.0.0.1 with fast timings and a quiet logger. */
export function startNode(name: string, extra: Partial<NodeOptions> = {}): Promise<Node> {
  return Node.start({
    name,
    cookie: "test-cookie",
    logger: () => {},
    ...FAST,
    ...extra,
  } as NodeOptions);
}

/** Waits until every node sees exactly `names` as members and connected members. */
export async function converged(nodes: Node[], names: string[], timeoutMs = 5000): Promise<void> {
  const want = [...names].sort().join(",");
  await eventually(
    () =>
      nodes.every((n) => n.members().join(",") === want && n.connectedMembers().join(",") === want),
    `views to converge on ${want}`,
    timeoutMs,
  );
}

/**
 * A node `a` (with `options`) that saw its peer `b` join and then close: `b`
 * is a member that is down.
 */
export async function withPeerDown(options: Partial<NodeOptions> = {}): Promise<Node> {
  const a = await startNode("a", options);
  const b = await startNode("b");
  await b.join(a.spec);
  await converged([a, b], ["a", "b"]);
  const down = nextEvent(a, "down", "b");
  await b.close();
  await down;
  return a;
}

/** A `deno` subprocess that prints one JSON object per line; its lines become `events`. */
export class JsonProcess {
  readonly child: Deno.ChildProcess;
  readonly events: Record<string, unknown>[] = [];
  #waiters: {
    match: (e: Record<string, unknown>) => boolean;
    resolve: (e: Record<string, unknown>) => void;
  }[] = [];
  readonly #pump: Promise<void>;

  #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #nextId = 1;

  /**
   * Runs `script` with `permissions`, then `args`. With `prefix` (such as
   * `["ip", "netns", "exec", "ns1"]`) the deno command runs under it; with
   * `stdin`, `command()` can write to the process.
   */
  constructor(
    script: URL,
    permissions: string[],
    args: string[],
    options: { prefix?: string[]; stdin?: boolean } = {},
  ) {
    const deno = [Deno.execPath(), "run", ...permissions, script.pathname, ...args];
    const [cmd, ...rest] = [...(options.prefix ?? []), ...deno];
    this.child = new Deno.Command(cmd!, {
      args: rest,
      stdout: "piped",
      stderr: "inherit",
      stdin: options.stdin ? "piped" : "null",
    }).spawn();
    if (options.stdin) this.#stdin = this.child.stdin.getWriter();
    this.#pump = this.#read();
  }

  /** Writes one JSON command (cli/mod.ts (agent) --control) and waits for its result line. */
  async command(cmd: Record<string, unknown>, timeoutMs = 15000): Promise<Record<string, unknown>> {
    if (this.#stdin === undefined) throw new Error("process started without stdin");
    const id = this.#nextId++;
    const result = this.waitFor(
      (e) => e.event === "result" && e.id === id,
      `result ${id}`,
      timeoutMs,
    );
    await this.#stdin.write(new TextEncoder().encode(JSON.stringify({ ...cmd, id }) + "\n"));
    return await result;
  }

  async #read(): Promise<void> {
    let buf = "";
    const dec = new TextDecoder();
    for await (const chunk of this.child.stdout) {
      buf += dec.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let e: Record<string, unknown>;
        try {
          e = JSON.parse(line);
        } catch {
          continue;
        }
        this.events.push(e);
        for (const w of [...this.#waiters]) {
          if (w.match(e)) {
            this.#waiters.splice(this.#waiters.indexOf(w), 1);
            w.resolve(e);
          }
        }
      }
    }
  }

  /** The first event (past or future) matching `match`. */
  waitFor(
    match: (e: Record<string, unknown>) => boolean,
    what: string,
    timeoutMs = 15000,
  ): Promise<Record<string, unknown>> {
    const past = this.events.find(match);
    if (past) return Promise.resolve(past);
    return new Promise((resolve, reject) => {
      const w = {
        match,
        resolve: (e: Record<string, unknown>) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  /** The first event (past or future) whose `event` field is `name`. */
  waitEvent(name: string, timeoutMs = 15000): Promise<Record<string, unknown>> {
    return this.waitFor((e) => e.event === name, name, timeoutMs);
  }

  /** Sends a signal and waits for exit. */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    try {
      this.child.kill(signal);
    } catch { /* already gone */ }
    await this.#stdin?.close().catch(() => {});
    await this.child.status;
    await this.#pump;
  }
}

/** A node running in its own `deno` process (cli/mod.ts (agent) --json). */
export class NodeProcess extends JsonProcess {
  /** Starts cli/mod.ts (agent) with the test cookie and `args`; with `stdin`, `command()` works (pass `--control`). */
  constructor(args: string[], options: { stdin?: boolean } = {}) {
    super(
      new URL("../cli/mod.ts", import.meta.url),
      ["--allow-net=127.0.0.1", "--allow-env"],
      ["--json", "--cookie", "test-cookie", ...args],
      options,
    );
  }

  /** Waits for the `ready` line and returns the port. */
  async ready(): Promise<number> {
    const e = await this.waitEvent("ready");
    return e.port as number;
  }
}

/** An authenticated connection to `addr` that speaks raw frames: what a hostile cluster member can do. */
export async function rawPeer(
  addr: { hostname: string; port: number },
  name = "mallory",
  cookie = "test-cookie",
): Promise<import("../membership/mod.ts").FrameConnection> {
  const { clientHandshake } = await import("../protocol.ts");
  const { TcpTransport } = await import("../membership/mod.ts");
  const conn = await new TcpTransport().connect(addr);
  try {
    await clientHandshake(
      conn,
      {
        cluster: "murmur",
        cookie,
        spec: { name, incarnation: 1, listenAddrs: [], channels: {} },
        nonce: () => crypto.getRandomValues(new Uint8Array(16)),
        handshakeFrameBytesMax: 16384,
      },
      "default",
      0,
    );
  } catch (e) {
    conn.close();
    throw e;
  }
  return conn;
}

/**
 * A TCP port on 127.0.0.1 that nothing listens on now, for a process that
 * must be told its port before it starts. Picked below Linux's ephemeral range
 * (32768 and up): a port taken from that range and released is soon handed to
 * another test's connection or `port: 0` listener, and the process that was
 * to bind it fails with "address in use" (seen in a parallel run).
 */
export function freePort(): number {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch {
      // Taken: another.
    }
  }
  throw new Error("no free port found below the ephemeral range in 200 tries");
}

/** Median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

/** A TCP listener that accepts and never answers (an attacker's address): counts the dials. */
export function tarpit(): { port: number; dials: () => number; close: () => Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) held.push(c);
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    dials: () => held.length,
    close: async () => {
      listener.close();
      for (const c of held) c.close();
      await accepting;
    },
  };
}
