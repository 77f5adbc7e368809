/**
 * `status URL`: asks a running node's dashboard for its state
 * (`/api/state`) and prints members, connections and counters as tables.
 *
 *   deno task cli status http://127.0.0.1:8080/
 *   deno task cli status --json http://10.0.0.1:8080/?token=...
 *
 * @module
 */

import type { DashboardState } from "../dashboard/mod.ts";

/** Left-aligned columns (numbers right-aligned), two spaces apart. */
export function formatTable(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map((c) => typeof c === "number" ? num(c) : c))];
  const numeric = head.map((_, i) =>
    rows.length > 0 && rows.every((r) => typeof r[i] === "number")
  );
  const width = head.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? "").length)));
  return cells.map((r) =>
    r.map((c, i) => numeric[i] ? String(c).padStart(width[i]!) : String(c).padEnd(width[i]!))
      .join("  ").trimEnd()
  ).join("\n");
}

function num(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/**
 * The state as text: a header line, the members table, traffic with rates,
 * and broadcast, publisher and durable lines when those parts are shown.
 *
 * @example
 * ```ts
 * import { formatStatus } from "./status.ts";
 * // const text = formatStatus(await (await fetch("http://127.0.0.1:8080/api/state")).json());
 * console.log(typeof formatStatus); // function
 * ```
 */
export function formatStatus(st: DashboardState): string {
  const out: string[] = [];
  out.push(
    `node ${st.node.name} (${st.node.strategy}) at ${st.node.address}, ${
      new Date(st.at).toISOString()
    }`,
    "",
  );
  out.push(formatTable(
    ["MEMBER", "STATE", "INCARNATION", "ADDRESS", "CONNECTIONS", "LAST HEARD"],
    st.members.map((m) => [
      m.name + (m.self ? " *" : ""),
      m.state,
      String(m.incarnation),
      m.address ?? "-",
      Object.entries(m.connections).map(([ch, n]) => `${ch}:${n}`).join(" ") || "-",
      m.lastHeardMs === undefined ? "-" : `${m.lastHeardMs} ms`,
    ]),
  ));
  const s = st.stats, r = st.rates;
  out.push(
    "",
    formatTable(["TRAFFIC", "FRAMES", "FRAMES/S", "BYTES", "BYTES/S"], [
      ["in", s.framesIn, r.framesIn, s.bytesIn, r.bytesIn],
      ["out", s.framesOut, r.framesOut, s.bytesOut, r.bytesOut],
    ]),
  );
  out.push(
    "",
    formatTable(["COUNTER", "VALUE"], [
      ["connections", s.connections],
      ["queuedBytes", s.queuedBytes],
      ["sendDrops", s.sendDrops],
      ["callsOutstanding", s.callsOutstanding],
      ["retransmits", s.retransmits],
      ["badConnections", s.badConnections],
      ["handshakesRefused", s.handshakesRefused],
      ["refutations", s.refutations],
    ]),
  );
  if (st.plumtree) {
    const p = st.plumtree.stats;
    out.push(
      "",
      `broadcast: ${p.deliveries} delivered, ${p.duplicates} duplicates, RMR (1 min) ` +
        `${
          r.rmr1m === undefined ? "-" : r.rmr1m.toFixed(3)
        }, ${p.graft} grafts, ${p.prune} prunes, ` +
        `${st.plumtree.trees.length} trees`,
    );
  }
  for (const p of st.publishers) {
    out.push(
      `publisher ${p.name} (${p.kind}): ${Object.keys(p.groups).length} groups/topics, ` +
        `peers ${p.peers.join(",") || "-"}`,
    );
  }
  for (const d of st.durable) {
    out.push(
      "error" in d.status
        ? `durable ${d.name}: ${d.status.error}`
        : `durable ${d.name}: queue ${d.status.queueLength}, dead letters ${d.status.deadLetters}, ` +
          `lock ${d.status.lock ? d.status.lock.owner : "free"}`,
    );
  }
  return out.join("\n");
}

/** Runs the subcommand: returns the exit code. */
export async function status(args: string[]): Promise<number> {
  const usage = "usage: murmur status [--json] DASHBOARD_URL (http://HOST:PORT/, with ?token=... " +
    "if set, or a bare port on 127.0.0.1)";
  if (args.includes("--help") || args.includes("-h")) {
    console.log(usage);
    return 0;
  }
  const json = args.includes("--json");
  const unknown = args.find((a) => a.startsWith("-") && a !== "--json");
  if (unknown !== undefined) {
    console.error(`status: unknown option ${unknown}\n${usage}`);
    return 2;
  }
  const target = args.find((a) => !a.startsWith("--"));
  if (target === undefined) {
    console.error(usage);
    return 2;
  }
  let url: URL;
  try {
    // A bare port means the dashboard on 127.0.0.1; a URL keeps its ?token=.
    const base = new URL(/^\d+$/.test(target) ? `http://127.0.0.1:${target}/` : target);
    url = new URL("api/state", base);
    url.search = base.search;
  } catch {
    console.error(`status: "${target}" is not a URL or a port`);
    return 2;
  }
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  } catch (e) {
    console.error(`status: cannot reach ${url.origin}: ${(e as Error).message}`);
    return 1;
  }
  if (!res.ok) {
    console.error(`status: ${url.origin} answered ${res.status}: ${(await res.text()).trim()}`);
    return 1;
  }
  const st = await res.json() as DashboardState;
  console.log(json ? JSON.stringify(st, null, 2) : formatStatus(st));
  return 0;
}
