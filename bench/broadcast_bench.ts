// deno bench: broadcast throughput, 8 nodes over TCP in one process: each
// iteration broadcasts 100 messages and waits until all 8 nodes have them all.
import { plumtree, run, startCluster } from "./_broadcast_fixture.ts";

const nodes = await startCluster(8);
const c = await plumtree(nodes);
let id = 0;
await run(c, 500, 100, (id += 500) - 500); // warm-up: the tree settles

for (const pad of [100, 1024]) {
  Deno.bench(
    `broadcast 100 messages of ${pad} B to 8 nodes (TCP)`,
    { n: 30, warmup: 3 },
    async () => {
      await run(c, 100, pad, id);
      id += 100;
    },
  );
}
