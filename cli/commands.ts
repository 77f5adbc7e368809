/**
 * The serf-style commands: each talks to a running agent's control API (its
 * `--dashboard` port, with the dashboard token off loopback).
 *
 *   murmur members [--status up] [--tag role=web] [--json]
 *   murmur join HOST:PORT...
 *   murmur leave
 *   murmur force-leave NAME
 *   murmur tags set k=v... | tags del k...
 *   murmur monitor
 *   murmur event NAME [PAYLOAD]
 *
 * Each takes `--addr URL` (or `MURMUR_ADDR`) and `--token T` (or
 * `MURMUR_DASHBOARD_TOKEN`).
 *
 * @module
 */

import { parseArgs } from "./_args.ts";
import type { MemberInfo } from "../membership/node_types.ts";
import { formatTable } from "./status.ts";

/** The commands' usage. */
export const COMMANDS_USAGE: string = [
  "usage: murmur members [--status STATE] [--tag NAME=VALUE]... [--json]",
  "       murmur join HOST:PORT...",
  "       murmur leave",
  "       murmur force-leave NAME",
  "       murmur tags set NAME=VALUE... | murmur tags del NAME...",
  "       murmur monitor",
  "       murmur event NAME [PAYLOAD]",
  "each with --addr URL (or MURMUR_ADDR: the agent's --dashboard address) and --token T",
  "(or MURMUR_DASHBOARD_TOKEN) when the agent's dashboard has one",
].join("\n");

/** The command names. */
export const COMMANDS: readonly string[] = [
  "members",
  "join",
  "leave",
  "force-leave",
  "tags",
  "monitor",
  "event",
];

class UsageError extends Error {}

/** A `NAME=VALUE` pair. */
function pair(s: string): [string, string] {
  const i = s.indexOf("=");
  if (i <= 0) throw new UsageError(`expected NAME=VALUE, got ${JSON.stringify(s)}`);
  return [s.slice(0, i), s.slice(i + 1)];
}

/**
 * Runs one command (`args[0]` is its name); resolves with the exit code: 0
 * done, 1 the agent refused or could not be reached, 2 bad usage.
 *
 * @example
 * ```ts ignore
 * import { command } from "@murmur/murmur/cli";
 * Deno.exit(await command(["members", "--addr", "http://127.0.0.1:8080/"]));
 * ```
 */
export async function command(
  args: string[],
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  const [name, ...rest] = args;
  let v: ReturnType<typeof parse>;
  try {
    if (rest.includes("--help") || rest.includes("-h")) {
      out(COMMANDS_USAGE);
      return 0;
    }
    v = parse(rest);
  } catch (e) {
    err(`murmur ${name}: ${(e as Error).message}\n${COMMANDS_USAGE}`);
    return 2;
  }
  const { values, positionals } = v;
  const addr = values.addr ?? (Deno.env.get("MURMUR_ADDR") || undefined);
  if (addr === undefined) {
    err(`murmur ${name}: no agent address: pass --addr URL or set MURMUR_ADDR\n${COMMANDS_USAGE}`);
    return 2;
  }
  let base: URL;
  try {
    base = new URL(addr);
  } catch {
    err(`murmur ${name}: --addr ${JSON.stringify(addr)} is not a URL (http://host:port/)`);
    return 2;
  }
  const token = values.token ?? (Deno.env.get("MURMUR_DASHBOARD_TOKEN") || undefined);
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const call = async (path: string, body?: unknown): Promise<Record<string, unknown>> => {
    let res: Response;
    try {
      res = await fetch(new URL(path, base), {
        method: body === undefined ? "GET" : "POST",
        headers: body === undefined ? headers : { ...headers, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (e) {
      throw new Error(`cannot reach ${base.origin}: ${(e as Error).message}`);
    }
    const text = await res.text();
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`${res.status} ${text.trim() || res.statusText}`);
    }
    if (parsed.ok !== true) throw new Error(String(parsed.error ?? `${res.status}`));
    return parsed;
  };
  try {
    switch (name) {
      case "members": {
        const tagWant = values.tag.map(pair);
        const r = await call("api/members");
        const members = (r.members as MemberInfo[]).filter((m) =>
          (values.status === undefined || m.state === values.status) &&
          tagWant.every(([k, val]) => m.tags[k] === val)
        );
        if (values.json) out(JSON.stringify(members));
        else {
          out(formatTable(
            ["NAME", "ADDRESS", "STATE", "TAGS"],
            members.map((m) => [
              m.name + (m.self ? " *" : ""),
              m.address ?? "-",
              m.state,
              Object.entries(m.tags).map(([k, val]) => `${k}=${val}`).join(",") || "-",
            ]),
          ));
        }
        return 0;
      }
      case "join": {
        if (positionals.length === 0) throw new UsageError("join needs HOST:PORT");
        for (const target of positionals) {
          const r = await call("api/join", { target });
          out(`joined ${(r.joined as { node: string }).node} (${target})`);
        }
        return 0;
      }
      case "leave":
        await call("api/leave", {});
        out("leaving: the agent leaves the cluster and stops");
        return 0;
      case "force-leave": {
        if (positionals.length !== 1) throw new UsageError("force-leave needs NAME");
        await call("api/force-leave", { name: positionals[0] });
        out(`${positionals[0]} removed`);
        return 0;
      }
      case "tags": {
        const [verb, ...items] = positionals;
        if ((verb !== "set" && verb !== "del") || items.length === 0) {
          throw new UsageError("tags set NAME=VALUE... or tags del NAME...");
        }
        const body = verb === "set" ? { set: Object.fromEntries(items.map(pair)) } : { del: items };
        const r = await call("api/tags", body);
        out(
          Object.entries(r.tags as Record<string, string>).map(([k, val]) => `${k}=${val}`)
            .join("\n") || "(no tags)",
        );
        return 0;
      }
      case "event": {
        if (positionals.length < 1 || positionals.length > 2) {
          throw new UsageError("event needs NAME [PAYLOAD]");
        }
        const r = await call("api/event", { name: positionals[0], payload: positionals[1] ?? "" });
        out(`event ${positionals[0]} sent (${r.id})`);
        return 0;
      }
      case "monitor":
        return await monitor(new URL("api/monitor", base), headers, out, err);
    }
    throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`murmur ${name}: ${e.message}\n${COMMANDS_USAGE}`);
      return 2;
    }
    err(`murmur ${name}: ${(e as Error).message}`);
    return 1;
  }
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: {
      addr: { type: "string" },
      token: { type: "string" },
      json: { type: "boolean", default: false },
      status: { type: "string" },
      tag: { type: "string", multiple: true, default: [] },
    },
  });
}

/** Prints each event of the agent's monitor stream as a line, until the stream ends. */
async function monitor(
  url: URL,
  headers: Record<string, string>,
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<number> {
  let res: Response;
  try {
    res = await fetch(url, { headers });
  } catch (e) {
    err(`murmur monitor: cannot reach ${url.origin}: ${(e as Error).message}`);
    return 1;
  }
  if (!res.ok || res.body === null) {
    err(`murmur monitor: ${res.status} ${(await res.text()).trim()}`);
    return 1;
  }
  let buf = "";
  for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6));
      if (data.length === 0) continue;
      const e = JSON.parse(data.join("\n")) as Record<string, unknown>;
      const { t, event, ...fields } = e;
      const extra = Object.entries(fields).map(([k, val]) => `${k}=${JSON.stringify(val)}`);
      out([new Date(Number(t)).toISOString(), event, ...extra].join(" "));
    }
  }
  return 0;
}
