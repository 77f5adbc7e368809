// A real etcd cluster for tests: N members on 127.0.0.1 (free ports, a unique
// cluster token, a temporary data directory), members that can be SIGKILLed,
// restarted, stopped and continued, and the leader found.

import { freePort } from "./_helpers.ts";

/** Why etcd tests cannot run here, or undefined when they can. */
export async function etcdUnavailable(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("etcd", {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    })
      .output();
    if (!out.success) return "`etcd --version` failed";
    return undefined;
  } catch {
    return "etcd is not installed (Debian: apt-get install etcd-server)";
  }
}

function freePorts(n: number): number[] {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(freePort());
  return [...ports];
}

interface Member {
  name: string;
  client: string;
  peer: string;
  dir: string;
  child: Deno.ChildProcess | undefined;
  stopped: boolean;
}

/** A running etcd cluster. */
export class EtcdCluster {
  readonly members: Member[];
  /** Where the logs are. */
  readonly root: string;
  /** Where the members' data is. */
  readonly data: string;
  readonly #token: string;
  readonly #initial: string;

  private constructor(root: string, data: string, members: Member[], token: string) {
    this.root = root;
    this.data = data;
    this.members = members;
    this.#token = token;
    this.#initial = members.map((m) => `${m.name}=${m.peer}`).join(",");
  }

  /**
   * Starts `n` members and waits until they have a leader. Their data lives on
   * tmpfs (`/dev/shm`) when `tmpfs` and there is one (etcd fsyncs every commit;
   * tests need speed, not durability across power loss), else on disk beside the logs.
   */
  static async start(n = 3, options: { tmpfs?: boolean } = {}): Promise<EtcdCluster> {
    const root = await Deno.makeTempDir({ prefix: "murmur-etcd-" });
    let data = root;
    if (options.tmpfs ?? true) {
      // Deno guards /dev; etcd creates the directory itself, `rm` removes it.
      const shm = `/dev/shm/murmur-etcd-${crypto.randomUUID()}`;
      const ok = await new Deno.Command("mkdir", { args: [shm], stdout: "null", stderr: "null" })
        .output().then((o) => o.success, () => false);
      if (ok) data = shm;
    }
    const ports = freePorts(2 * n);
    const members: Member[] = Array.from({ length: n }, (_, i) => ({
      name: `m${i}`,
      client: `http://127.0.0.1:${ports[2 * i]}`,
      peer: `http://127.0.0.1:${ports[2 * i + 1]}`,
      dir: `${data}/m${i}`,
      child: undefined,
      stopped: false,
    }));
    const c = new EtcdCluster(root, data, members, `murmur-${crypto.randomUUID()}`);
    for (let i = 0; i < n; i++) c.#spawn(i, "new");
    try {
      await c.waitHealthy(30_000);
    } catch (e) {
      await c.close();
      throw e;
    }
    return c;
  }

  /** The client URLs. */
  get endpoints(): string[] {
    return this.members.map((m) => m.client);
  }

  #spawn(i: number, state: "new" | "existing"): void {
    const m = this.members[i]!;
    m.child = new Deno.Command("etcd", {
      args: [
        "--name",
        m.name,
        "--data-dir",
        m.dir,
        "--listen-client-urls",
        m.client,
        "--advertise-client-urls",
        m.client,
        "--listen-peer-urls",
        m.peer,
        "--initial-advertise-peer-urls",
        m.peer,
        "--initial-cluster",
        this.#initial,
        "--initial-cluster-token",
        this.#token,
        "--initial-cluster-state",
        state,
        "--logger",
        "zap",
        "--log-outputs",
        `${this.root}/${m.name}.log`,
        "--auto-compaction-mode",
        "revision",
        "--auto-compaction-retention",
        "10000",
      ], // deno-fmt-ignore
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    m.stopped = false;
  }

  /** POSTs to one member's gateway; undefined when it does not answer within `ms`. */
  async #status(i: number, ms = 1000): Promise<{ leader: string; member: string } | undefined> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), ms);
    try {
      const res = await fetch(`${this.members[i]!.client}/v3/maintenance/status`, {
        method: "POST",
        body: "{}",
        signal: ctl.signal,
      });
      const j = await res.json();
      if (!res.ok || j.leader === undefined || j.leader === "0") return undefined;
      return { leader: String(j.leader), member: String(j.header.member_id) };
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits until every running member answers and all name the same leader. */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let round = 0; round < 10_000 && Date.now() < deadline; round++) {
      const live = this.members.map((m, i) => (m.child && !m.stopped ? i : -1)).filter((i) =>
        i >= 0
      );
      const st = await Promise.all(live.map((i) => this.#status(i)));
      if (st.every((s) => s !== undefined) && new Set(st.map((s) => s!.leader)).size === 1) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    const logs = await Deno.readTextFile(`${this.root}/m0.log`).catch(() => "");
    throw new Error(
      `etcd cluster not healthy within ${timeoutMs} ms; m0 log tail:\n${logs.slice(-2000)}`,
    );
  }

  /** The index of the current leader (waits for one, bounded). */
  async leader(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (let round = 0; round < 1000 && Date.now() < deadline; round++) {
      for (const [i, m] of this.members.entries()) {
        if (!m.child || m.stopped) continue;
        const s = await this.#status(i, 500);
        if (s && s.leader === s.member) return i;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no etcd leader within ${timeoutMs} ms`);
  }

  /** Kills member `i` (SIGKILL by default) and waits for it to exit. */
  async kill(i: number, signal: Deno.Signal = "SIGKILL"): Promise<void> {
    const m = this.members[i]!;
    if (!m.child) return;
    if (m.stopped) m.child.kill("SIGCONT");
    try {
      m.child.kill(signal);
    } catch { /* already gone */ }
    await m.child.status;
    m.child = undefined;
  }

  /** Starts member `i` again on its data directory. */
  restart(i: number): void {
    if (this.members[i]!.child) throw new Error(`member ${i} is running`);
    this.#spawn(i, "existing");
  }

  /** SIGSTOPs member `i` (it stays in the cluster, silent). */
  stop(i: number): void {
    const m = this.members[i]!;
    m.child?.kill("SIGSTOP");
    m.stopped = true;
  }

  /** SIGCONTs member `i`. */
  cont(i: number): void {
    const m = this.members[i]!;
    m.child?.kill("SIGCONT");
    m.stopped = false;
  }

  /** Kills every member and removes the data. */
  async close(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.kill(i);
    if (this.data !== this.root) {
      await new Deno.Command("rm", { args: ["-rf", this.data] }).output().catch(() => {});
    }
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }

  /** For an unload handler: kills synchronously, removes the data. */
  closeSync(): void {
    for (const m of this.members) {
      try {
        if (m.stopped) m.child?.kill("SIGCONT");
        m.child?.kill("SIGKILL");
      } catch { /* gone */ }
    }
    try {
      if (this.data !== this.root) {
        new Deno.Command("rm", { args: ["-rf", this.data] }).outputSync();
      }
      Deno.removeSync(this.root, { recursive: true });
    } catch { /* gone */ }
  }
}
