// Issue 29's real-process target: 48 HyParView processes, 24 of them SIGKILLed
// at once; broadcasts sent 1 s later reach every survivor. A killed process's
// connections are reset by its host, so each survivor learns it at once and
// promotes passive members (no failure timeout to wait for).
import assert from "node:assert/strict";
import { seededRandom } from "../base/clock.ts";
import { eventually, type JsonProcess, NodeProcess } from "./_helpers.ts";

const PROCESSES = 48;
const KILLED = 24;
const BROADCASTS = 10;

function agent(name: string, join: number | undefined): NodeProcess {
  // Shuffles every 2 s (not 10): passive views fill in seconds, so the overlay
  // is settled sooner (each second of waiting is 48 processes' CPU).
  const args = [
    "--name",
    name,
    "--membership",
    "hyparview",
    "--shuffle-interval-ms",
    "2000",
    "--log-level",
    "error",
    "--control",
  ];
  if (join !== undefined) args.push("--join", `127.0.0.1:${join}`);
  return new NodeProcess(args, { stdin: true });
}

async function ask(p: JsonProcess, to: string, endpoint: string, msg: unknown = null) {
  const r = await p.command({ op: "call", to, endpoint, msg }, 20_000);
  if (r.ok !== true) throw new Error(`${to} ${endpoint}: ${r.error}`);
  return r.value;
}

Deno.test({
  name:
    "HyParView processes: 24 of 48 SIGKILLed at once; broadcasts sent 1 s later reach every survivor",
  async fn() {
    const seed = Date.now() % 100_000;
    console.log(`seed ${seed}`);
    const rnd = seededRandom(seed);
    const procs: JsonProcess[] = [];
    try {
      const first = agent("p0", undefined);
      procs.push(first);
      const port = (await first.waitEvent("ready", 30_000)).port as number;
      // Everyone joins p0 at nearly the same instant (a mass join over real TCP).
      for (let i = 1; i < PROCESSES; i++) procs.push(agent(`p${i}`, port));
      await Promise.all(procs.map((p) => p.waitEvent("ready", 90_000)));
      const t0 = performance.now();
      // Settled: every node holds at least three neighbours, and knows at least
      // six passive members to replace them with (a node whose every address
      // died with the others has no one left to ask; the simulator's failure
      // scenarios start from an overlay settled for 20 s).
      const view = (v: Record<string, unknown>) =>
        v.value as { members: string[]; passive: string[] };
      await eventually(
        async () => {
          const views = await Promise.all(procs.map((p) => p.command({ op: "members" })));
          return views.every((v) => view(v).members.length - 1 >= 3);
        },
        "every process with three neighbours",
        60_000,
        250,
      );
      console.log(`overlay joined ${Math.round(performance.now() - t0)} ms after the last start`);
      await eventually(
        async () => {
          const views = await Promise.all(procs.map((p) => p.command({ op: "members" })));
          return views.every((v) => view(v).members.length - 1 >= 3 && view(v).passive.length >= 6);
        },
        "every process with six passive members",
        60_000,
        1000,
      );
      console.log(`overlay settled ${Math.round(performance.now() - t0)} ms after the last start`);
      const names = procs.map((_, i) => `p${i}`);
      const order = names.map((n) => [rnd.next(), n] as const).sort((a, b) => a[0] - b[0]);
      const victims = new Set(order.slice(0, KILLED).map(([, n]) => n));
      await Promise.all(procs.filter((_, i) => victims.has(names[i]!)).map((p) => p.kill()));
      const survivors = procs.filter((_, i) => !victims.has(names[i]!));
      const survivorNames = names.filter((n) => !victims.has(n));
      console.log(`killed ${[...victims].sort().join(" ")}`);
      // One second later, a survivor broadcasts.
      await new Promise((r) => setTimeout(r, 1000));
      const from = survivors[0]!;
      const sentAt = performance.now();
      assert.equal(
        await ask(from, survivorNames[0]!, "chat.say", { count: BROADCASTS, tag: "x" }),
        10,
      );
      let lacking: string[] = [];
      try {
        await eventually(
          async () => {
            const got = await Promise.all(
              survivors.map((p, i) => ask(p, survivorNames[i]!, "chat.stats")),
            );
            lacking = survivorNames.filter((_, i) =>
              (got[i] as { received: number }).received !== BROADCASTS
            );
            return lacking.length === 0;
          },
          "every survivor with the 10 broadcasts",
          10_000,
          100,
        );
      } catch (e) {
        // Say who lacks them and what they see, to tell an isolated node from a lost frame.
        for (const name of lacking) {
          const p = survivors[survivorNames.indexOf(name)]!;
          const v = await p.command({ op: "members" });
          const st = await ask(p, name, "chat.stats");
          console.log(`${name} lacks broadcasts: ${JSON.stringify(v.value)} ${JSON.stringify(st)}`);
        }
        throw e;
      }
      console.log(
        `every survivor had all ${BROADCASTS} broadcasts ${
          Math.round(performance.now() - sentAt)
        } ms after they were sent`,
      );
    } finally {
      await Promise.all(procs.map((p) => p.kill()));
    }
  },
});
