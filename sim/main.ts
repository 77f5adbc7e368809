// `deno task sim`: runs the simulator's scenarios and prints one table row per
// run, then one JSON line per run.
//
//   --scenario NAME   only scenarios whose name starts with NAME (repeatable: a,b)
//   --seeds 1,2,3,4   the seeds (default 1,2,3,4)
//   --large           also 10,000 nodes, one broadcaster (minutes)
//   --baseline FILE   compare with the JSON lines of an earlier run
import { parseArgs } from "node:util";
import { runScenario, scenario, type ScenarioResult, standardScenarios } from "./scenarios.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    scenario: { type: "string" },
    seeds: { type: "string", default: "1,2,3,4" },
    large: { type: "boolean", default: false },
    baseline: { type: "string" },
  },
});
const seeds = values.seeds.split(",").map(Number);
if (seeds.some((s) => !Number.isInteger(s))) throw new TypeError("--seeds takes integers: 1,2,3");
let list = standardScenarios();
if (values.large) list.push(scenario("one", 10_000));
if (values.scenario) {
  const wanted = values.scenario.split(",");
  list = list.filter((s) => wanted.some((w) => s.name.startsWith(w)));
}
const baseline = new Map<string, ScenarioResult>();
if (values.baseline) {
  for (const line of (await Deno.readTextFile(values.baseline)).split("\n")) {
    if (!line.startsWith("{")) continue;
    const r = JSON.parse(line) as ScenarioResult;
    baseline.set(`${r.scenario}/${r.strategy}/${r.nodes}/${r.seed}`, r);
  }
}
const pad = (s: string | number, n: number) => String(s).padStart(n);
console.log(
  `${"scenario".padEnd(16)}${"strategy".padEnd(11)}${pad("seed", 5)}${pad("messages", 10)}${
    pad("delivered", 11)
  }${pad("missed", 8)}${pad("rmr", 8)}${pad("ldh", 7)}${pad("virtual s", 11)}${pad("wall s", 8)}`,
);
const results: ScenarioResult[] = [];
let worse = 0;
for (const s of list) {
  for (const seed of seeds) {
    const r = runScenario(s, seed);
    results.push(r);
    let line = `${r.scenario.padEnd(16)}${r.strategy.padEnd(11)}${pad(seed, 5)}${
      pad(r.messages, 10)
    }${pad(r.delivered, 11)}${pad(r.missed, 8)}${pad(r.rmr.toFixed(3), 8)}${
      pad(r.ldh.toFixed(1), 7)
    }${pad((r.virtualMs / 1000).toFixed(0), 11)}${pad((r.wallMs / 1000).toFixed(1), 8)}`;
    const b = baseline.get(`${r.scenario}/${r.strategy}/${r.nodes}/${seed}`);
    if (b !== undefined) {
      const bad = r.missed > b.missed || r.rmr > b.rmr + 0.005;
      if (bad) worse++;
      line += `  vs baseline: missed ${signed(r.missed - b.missed)}, rmr ${
        signed(r.rmr - b.rmr, 3)
      }, ldh ${signed(r.ldh - b.ldh, 1)}, wall ${signed((r.wallMs - b.wallMs) / 1000, 1)} s${
        bad ? "  WORSE" : ""
      }`;
    }
    console.log(line);
  }
}
console.log("");
for (const r of results) console.log(JSON.stringify(r));
if (values.baseline) {
  console.log(
    `\n${worse} run(s) worse than the baseline (more missed, or rmr up by more than 0.005)`,
  );
}

function signed(x: number, digits = 0): string {
  const s = x.toFixed(digits);
  return x > 0 ? `+${s}` : s;
}
