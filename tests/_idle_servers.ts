// Child process of tests/durable_idle_test.ts: starts `servers` idle durable
// servers on one Deno KV file, measures this process's CPU while they idle,
// then times a cast and a call on ten of them. Its own process, so that the
// figure is these servers' alone (a parallel test run shares the parent's).
// Prints one JSON line: {"event":"result","cores":...,"medianMs":...}.

import process from "node:process";
import { DenoKvStorage, type DurableBehaviour, DurableServer } from "../durable/mod.ts";

const Counter: DurableBehaviour<number, "get", { add: number }, never, number> = {
  init: () => ({ state: 0 }),
  handleCall: (_m, _f, n) => ({ reply: n, state: n }),
  handleCast: (m, n) => ({ state: n + m.add }),
};

const servers = Number(Deno.args[0]);
const dir = await Deno.makeTempDir();
const storage = await DenoKvStorage.open(`${dir}/kv.sqlite`);
const started: DurableServer<number, "get", { add: number }, never, number>[] = [];
try {
  for (let i = 0; i < servers; i++) {
    started.push(await DurableServer.start(Counter, 0, { storage, tenant: ["room", i] }));
  }
  // Past the doubling (100 ms ... 3.2 s), then 3 s of idling measured.
  await new Promise((r) => setTimeout(r, 3500));
  const c0 = process.cpuUsage(), t0 = performance.now();
  await new Promise((r) => setTimeout(r, 3000));
  const c = process.cpuUsage(c0), ms = performance.now() - t0;
  const cores = (c.user + c.system) / 1000 / ms;
  // A cast then a call on servers idle for seconds: woken by their own writes.
  const took: number[] = [];
  for (let k = 0; k < 10; k++) {
    const s = started[k * Math.floor(servers / 10)]!;
    const a = performance.now();
    await s.cast({ add: k });
    if (await s.call("get") !== k) throw new Error(`server ${k * 30} lost its cast`);
    took.push(performance.now() - a);
  }
  took.sort((x, y) => x - y);
  console.log(JSON.stringify({ event: "result", cores, medianMs: took[5] }));
} finally {
  for (const s of started) await s.stop();
  await storage.close();
  await Deno.remove(dir, { recursive: true });
}
