// `deno task sim`: runs the simulator's scenarios and prints one table row per
// run, then one JSON line per run.
//
//   --scenario NAME   only scenarios whose name starts with NAME (repeatable: a,b)
//   --seeds 1,2,3,4   the seeds (default 1,2,3,4)
//   --large           also 10,000 nodes: one broadcaster, the failure sweep
//                     (crash20-10000 ... crash95-10000: that share of the
//                     processes crashes at once), and presence with 100
//                     trackers (minutes each; see docs/BENCHMARKS.md)
//   --huge            also 100,000 nodes, one broadcaster (over an hour and
//                     GiBs of heap; `deno task sim` allows V8 16 GiB). On Linux
//                     it needs `vm.max_map_count` above its default 65,530
//                     (`sysctl -w vm.max_map_count=262144`): V8 maps its heap in
//                     256 KiB pages, and the run came within 1% of that count
//                     (65,305 mappings); when the count runs out it aborts
//
// The publisher scenarios (presence-1000, presence-churn-1000) print the
// usual fields and convergedMs, staleEntries and bytesPerNodePerSec.
//   --baseline FILE   compare with the JSON lines of an earlier run
import { parseArgs } from "node:util";
import { runScenario, scenario, type ScenarioResult, standardScenarios } from "./scenarios.ts";
import {
  type PublisherScenarioKind,
  type PublisherScenarioResult,
  runPublisherScenario,
} from "./publisher_scenarios.ts";

/** `--large`: the fractions of 10,000 nodes crashed at once in the failure sweep. */
const LARGE_CRASH_FRACTIONS = [0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95];

/**
 * Said once on stderr by `--huge` on Linux: Deno cannot read /proc under
 * `--allow-read`, so the limit is named, not checked.
 */
const HUGE_MAP_COUNT = "sim: --huge: on Linux this needs vm.max_map_count above its default " +
  "65,530 (V8 maps its heap in 256 KiB pages; a 100,000-node run came within 1% of that count, " +
  "and when the count runs out the process aborts): sysctl -w vm.max_map_count=262144";

const USAGE = "usage: deno task sim [--scenario NAME[,NAME]...] [--seeds 1,2,3,4] [--large] " +
  "[--huge] [--baseline FILE]";
if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
  console.log(USAGE);
  Deno.exit(0);
}
let parsed;
try {
  parsed = parseArgs({
    args: Deno.args,
    options: {
      scenario: { type: "string" },
      seeds: { type: "string", default: "1,2,3,4" },
      large: { type: "boolean", default: false },
      huge: { type: "boolean", default: false },
      baseline: { type: "string" },
    },
  });
} catch (e) {
  console.error(`sim: ${(e as Error).message}\n${USAGE}`);
  Deno.exit(2);
}
const { values } = parsed;
const seeds = values.seeds.split(",").map(Number);
if (seeds.some((s) => !Number.isInteger(s))) throw new TypeError("--seeds takes integers: 1,2,3");
let list = standardScenarios();
if (values.large) {
  list.push(scenario("one", 10_000));
  // The failure sweep: 20-95% of 10,000 processes crash at once.
  for (const f of LARGE_CRASH_FRACTIONS) list.push(scenario("crash", 10_000, "hyparview", f));
}
if (values.huge) list.push(scenario("one", 100_000));
/** The publisher scenarios: kind, nodes, trackers. */
let pubList: { name: string; run: (seed: number) => PublisherScenarioResult }[] = [
  ["presence", 1000],
  ["presence-churn", 1000],
  ...(values.large ? [["presence", 10_000, 100]] : []),
].map(([kind, n, t]) => ({
  name: `${kind}-${n}${t === undefined ? "" : `-t${t}`}`,
  run: (seed: number) =>
    runPublisherScenario(
      kind as PublisherScenarioKind,
      n as number,
      seed,
      t === undefined ? {} : { trackers: t as number },
    ),
}));
if (values.scenario) {
  const wanted = values.scenario.split(",");
  const known = [...new Set([...list, ...pubList].map((s) => s.name))];
  const none = wanted.filter((w) => !known.some((k) => k.startsWith(w)));
  if (none.length > 0) {
    console.error(
      `sim: no scenario starts with ${none.map((w) => `"${w}"`).join(", ")}; known: ${
        known.join(", ")
      }${values.large ? "" : " (--large adds the 10,000-node ones, --huge one-100000)"}`,
    );
    Deno.exit(2);
  }
  list = list.filter((s) => wanted.some((w) => s.name.startsWith(w)));
  pubList = pubList.filter((s) => wanted.some((w) => s.name.startsWith(w)));
}
if (Deno.build.os === "linux" && list.some((s) => s.nodes >= 100_000)) {
  console.error(HUGE_MAP_COUNT);
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
  `${"scenario".padEnd(18)}${"strategy".padEnd(11)}${pad("seed", 5)}${pad("messages", 10)}${
    pad("delivered", 11)
  }${pad("missed", 8)}${pad("rmr", 8)}${pad("ldh", 7)}${pad("stale", 7)}${pad("rel3s", 8)}${
    pad("conn ms", 9)
  }${pad("virtual s", 11)}${pad("wall s", 8)}`,
);
const results: ScenarioResult[] = [];
let worse = 0;
for (const s of list) {
  for (const seed of seeds) {
    // Runs of 10,000 nodes and more take minutes: their joins are reported on stderr as they go.
    const r = runScenario(s, seed, {
      progress: s.nodes >= 10_000
        ? (joined, virtualMs, wallMs) =>
          console.error(
            `  ${s.name} seed ${seed}: ${joined} joined, ${(virtualMs / 1000).toFixed(0)} s ` +
              `virtual, ${(wallMs / 1000).toFixed(0)} s wall, ` +
              `${mib(Deno.memoryUsage())}`,
          )
        : undefined,
      progressEvery: s.nodes >= 100_000 ? 5000 : 2500,
    });
    results.push(r);
    let line = `${r.scenario.padEnd(18)}${r.strategy.padEnd(11)}${pad(seed, 5)}${
      pad(r.messages, 10)
    }${pad(r.delivered, 11)}${pad(r.missed, 8)}${pad(r.rmr.toFixed(3), 8)}${
      pad(r.ldh.toFixed(1), 7)
    }${pad(r.staleNeighbours, 7)}${pad(r.reliability3s.toFixed(3), 8)}${pad(r.connectedMs, 9)}${
      pad((r.virtualMs / 1000).toFixed(0), 11)
    }${pad((r.wallMs / 1000).toFixed(1), 8)}`;
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
if (pubList.length > 0) {
  console.log(
    `\n${"scenario".padEnd(24)}${pad("seed", 5)}${pad("converged ms", 14)}${pad("stale", 7)}${
      pad("B/node/s", 10)
    }${pad("wall s", 8)}`,
  );
}
for (const s of pubList) {
  for (const seed of seeds) {
    const r = s.run(seed);
    results.push(r);
    const initial = r.convergedInitialMs === undefined ? "" : `${r.convergedInitialMs} / `;
    let line = `${r.scenario.padEnd(24)}${pad(seed, 5)}${pad(initial + r.convergedMs, 14)}${
      pad(r.staleEntries, 7)
    }${pad(r.bytesPerNodePerSec, 10)}${pad((r.wallMs / 1000).toFixed(1), 8)}`;
    const b = baseline.get(`${r.scenario}/${r.strategy}/${r.nodes}/${seed}`) as
      | PublisherScenarioResult
      | undefined;
    if (b !== undefined) {
      const bad = r.staleEntries > b.staleEntries || r.missed > b.missed ||
        (r.convergedMs < 0) !== (b.convergedMs < 0);
      if (bad) worse++;
      line += `  vs baseline: converged ${signed(r.convergedMs - b.convergedMs)} ms, B/node/s ${
        signed(r.bytesPerNodePerSec - b.bytesPerNodePerSec)
      }${bad ? "  WORSE" : ""}`;
    }
    console.log(line);
  }
}
console.log("");
for (const r of results) console.log(JSON.stringify(r));
if (values.baseline) {
  console.log(
    `\n${worse} run(s) worse than the baseline (more missed, or rmr up by more than 0.005; ` +
      `publishers: more stale entries, or convergence lost)`,
  );
}

/** RSS and heap used, from one reading. */
function mib(m: Deno.MemoryUsage): string {
  return `${Math.round(m.rss / 2 ** 20)} MiB RSS, ${
    Math.round(m.heapUsed / 2 ** 20)
  } MiB heap used`;
}

function signed(x: number, digits = 0): string {
  const s = x.toFixed(digits);
  return x > 0 ? `+${s}` : s;
}
