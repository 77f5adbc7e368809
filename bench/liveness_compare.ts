// `deno task bench:liveness`: failure detection of the full mesh (SWIM) with
// real `deno` agent processes (cli/mod.ts) on this machine.
//
// N processes (--n, default 16) join one by one; pings every --ping-ms (1000),
// failure timeout --failure-ms (5000). Then, on one random process each:
// 1. SIGSTOP for --stop-s seconds (10): the process is hung, its connections
//    stay open. Time until every other process lists it down; after SIGCONT,
//    time until every process lists all again. Downs of any other process
//    during the run are false downs.
// 2. SIGKILL: time until every other process lists it down (its connections
//    close, so this is the time for the news to travel).
// Each process is polled for its connected members every 100 ms.
import { parseArgs } from "node:util";
import { JsonProcess } from "../tests/_helpers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    n: { type: "string", default: "16" },
    "ping-ms": { type: "string", default: "1000" },
    "failure-ms": { type: "string", default: "5000" },
    "stop-s": { type: "string", default: "10" },
    seed: { type: "string", default: String(Date.now() % 100_000) },
  },
});
const N = Number(values.n);
let rnd = Number(values.seed);
const next = () => ((rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

class Agent extends JsonProcess {
  readonly name: string;
  constructor(name: string) {
    super(
      new URL("../cli/mod.ts", import.meta.url),
      ["--allow-net=127.0.0.1", "--allow-env"],
      [
        ...["--name", name, "--cookie", "bench", "--json", "--control"],
        ...["--ping-interval-ms", values["ping-ms"], "--failure-timeout-ms", values["failure-ms"]],
        ...["--log-level", "error"],
      ],
      { stdin: true },
    );
    this.name = name;
  }
  get port(): number {
    return this.events.find((e) => e.event === "ready")!.port as number;
  }
  get pid(): number {
    return this.events.find((e) => e.event === "ready")!.pid as number;
  }
  async connected(): Promise<string[]> {
    const r = await this.command({ op: "members" }, 30_000);
    return (r.value as { connected: string[] }).connected;
  }
}

/** Polls every 100 ms until `done(views)`; returns the ms it took (or Infinity after `maxMs`). */
async function until(
  procs: Agent[],
  done: (views: Map<string, string[]>) => boolean,
  maxMs: number,
  onView?: (views: Map<string, string[]>) => void,
): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < maxMs) {
    const views = new Map(
      await Promise.all(procs.map(async (p) => [p.name, await p.connected()] as const)),
    );
    onView?.(views);
    if (done(views)) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 100));
  }
  return Infinity;
}

const procs = Array.from({ length: N }, (_, i) => new Agent(`p${String(i).padStart(2, "0")}`));
try {
  for (const p of procs) await p.waitEvent("ready", 120_000);
  for (let i = 1; i < N; i++) {
    const to = procs[Math.floor(next() * i)]!;
    const r = await procs[i]!.command({ op: "join", target: `127.0.0.1:${to.port}` }, 30_000);
    if (r.ok !== true) throw new Error(`join: ${r.error}`);
  }
  const all = (views: Map<string, string[]>, ps: Agent[], n: number) =>
    ps.every((p) => views.get(p.name)!.length === n);
  const settle = await until(procs, (v) => all(v, procs, N), 60_000);
  console.log(
    `murmur full-mesh liveness (${new Date().toISOString()}, Deno ${Deno.version.deno}), ` +
      `${N} agent processes, pings every ${values["ping-ms"]} ms, failure timeout ` +
      `${values["failure-ms"]} ms, seed ${values.seed}; settled ${
        settle.toFixed(0)
      } ms after the last join\n`,
  );

  // 1. SIGSTOP one process.
  const hung = procs[1 + Math.floor(next() * (N - 1))]!;
  const others = procs.filter((p) => p !== hung);
  const falseDowns = new Set<string>();
  const watch = (views: Map<string, string[]>) => {
    for (const p of others) {
      for (const q of others) {
        if (!views.get(p.name)!.includes(q.name)) falseDowns.add(`${p.name} lost ${q.name}`);
      }
    }
  };
  Deno.kill(hung.pid, "SIGSTOP");
  const stoppedAt = performance.now();
  const down = await until(
    others,
    (v) => others.every((p) => !v.get(p.name)!.includes(hung.name)),
    Number(values["stop-s"]) * 1000 + 30_000,
    watch,
  );
  const rest = Number(values["stop-s"]) * 1000 - (performance.now() - stoppedAt);
  if (rest > 0) await until(others, () => false, rest, watch);
  Deno.kill(hung.pid, "SIGCONT");
  const back = await until(procs, (v) => all(v, procs, N), 60_000);
  console.log(`| event | time |`);
  console.log(`| --- | ---: |`);
  console.log(`| ${hung.name} SIGSTOPped: down on all ${N - 1} others | ${down.toFixed(0)} ms |`);
  console.log(
    `| ${hung.name} SIGCONTed after ${values["stop-s"]} s: every process lists all again | ${
      back.toFixed(0)
    } ms |`,
  );
  console.log(`| false downs among the others while it was stopped | ${falseDowns.size} |`);

  // 2. SIGKILL one process.
  const victim = others[Math.floor(next() * others.length)]!;
  const alive = procs.filter((p) => p !== victim);
  await victim.kill("SIGKILL");
  const killed = await until(
    alive,
    (v) => alive.every((p) => !v.get(p.name)!.includes(victim.name)),
    30_000,
  );
  console.log(
    `| ${victim.name} SIGKILLed: down on all ${N - 1} others | ${killed.toFixed(0)} ms |`,
  );
} finally {
  for (const p of procs) await p.kill();
}
