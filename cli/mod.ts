/**
 * The operator CLI: `agent` runs a node (the default command), `status URL`
 * prints a running node's state from its dashboard, and the serf-style
 * commands (`members`, `join`, `leave`, `force-leave`, `tags`, `monitor`,
 * `event`) drive a running agent through its control API.
 *
 *   deno run -A jsr:@murmur/murmur/cli agent --name a --port 7000 --cookie s3cret --dashboard 8080
 *   deno run -A jsr:@murmur/murmur/cli status http://127.0.0.1:8080/
 *   deno run -A jsr:@murmur/murmur/cli members --tag role=web --addr http://127.0.0.1:8080/
 *
 * From a clone: `deno task cli agent ...` and `deno task cli status ...`.
 *
 * @example
 * ```ts ignore
 * import { main } from "@murmur/murmur/cli";
 * Deno.exit(await main(["status", "http://127.0.0.1:8080/"]));
 * ```
 *
 * @module
 */

import { agent } from "./agent.ts";
import { command, COMMANDS } from "./commands.ts";
import { status } from "./status.ts";

export { agent } from "./agent.ts";
export { command, COMMANDS, COMMANDS_USAGE } from "./commands.ts";
export { status } from "./status.ts";

/**
 * Runs one CLI command; resolves with the exit code (`agent` resolves once the
 * node is up and keeps the process running).
 *
 * @example
 * ```ts ignore
 * import { main } from "@murmur/murmur/cli";
 * await main(["agent", "--name", "a", "--cookie", "s3cret"]);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  if (args[0] === "status") return await status(args.slice(1));
  if (COMMANDS.includes(args[0] ?? "")) return await command(args);
  await agent(args[0] === "agent" ? args.slice(1) : args);
  return 0;
}

if (import.meta.main) {
  const code = await main(Deno.args);
  if (code !== 0) Deno.exit(code);
}
