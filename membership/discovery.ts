/**
 * Discovery: how a node finds its cluster when start order is random
 * (docker compose, Kubernetes) and addresses change. libcluster's and serf's
 * `retry_join`, with DNS polling:
 *
 * - **Seeds** (`seeds: ["db-1:7000", "10.0.0.5:7000"]`): while this node has
 *   no other member, it tries each seed in turn, again and again, waiting a
 *   capped exponential backoff with jitter between rounds
 *   (`retryMinMs` .. `retryMaxMs`); once joined it stops, and starts again
 *   if it is ever alone (every other member gone).
 * - **DNS** (`dns: { name, type, port }`): every `intervalMs` the name is
 *   resolved (`A`/`AAAA` with `port`, or `SRV`, whose records carry their
 *   ports, as a Kubernetes headless service publishes them) and each address
 *   that is no known member's is joined: new pods join as they appear.
 *
 * Every attempt is logged (`info` for a join, `warn` for a lookup that
 * failed, `debug` for a seed not answering yet), naming what it tried.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur";
 * await using node = await Node.start({
 *   name: "a",
 *   cookie: "s3cret",
 *   discovery: { seeds: ["127.0.0.1:1"], retryMaxMs: 5000 },
 * });
 * console.log(node.members()); // [ "a" ] (the seed is not up yet: retried in the background)
 * ```
 *
 * @module
 */

import type { Clock, Random, TimerId } from "../base/clock.ts";
import { numberOption } from "../base/options.ts";
import { type Address, formatAddress, parseAddress } from "./transport.ts";

/** Where a node looks for its cluster (`Node.start({ discovery })`). */
export interface DiscoveryOptions {
  /** `host:port` of nodes to join, tried in turn while this node is alone. */
  seeds?: string[];
  /** A DNS name polled for members. */
  dns?: DnsDiscoveryOptions;
  /**
   * The first wait after a round of seeds that all failed; it doubles up to
   * `retryMaxMs`, each wait jittered to between half and all of it.
   *
   * @default 500
   */
  retryMinMs?: number;
  /**
   * The longest wait between two rounds of seeds.
   *
   * @default 30000
   */
  retryMaxMs?: number;
}

/** DNS discovery: the records of `name`, polled every `intervalMs`. */
export interface DnsDiscoveryOptions {
  /** The name to resolve (`murmur.default.svc.cluster.local`, `_murmur._tcp.example.com`). */
  name: string;
  /**
   * The record type: `SRV` records carry their ports; `A` and `AAAA` take
   * `port`.
   *
   * @default "SRV" without `port`, else "A"
   */
  type?: "A" | "AAAA" | "SRV";
  /** The port of every address an `A`/`AAAA` record gives. */
  port?: number;
  /**
   * How often the name is resolved.
   *
   * @default 5000
   */
  intervalMs?: number;
  /** A name server other than the system's (`Deno.resolveDns`' option). */
  nameServer?: { ipAddr: string; port?: number };
}

/** What discovery needs of a node. */
export interface DiscoveryHost {
  /** This node's name. */
  readonly name: string;
  /** Members (self included). */
  members(): string[];
  /** The addresses of the known members, `host:port`. */
  knownAddresses(): Set<string>;
  /** Joins the node at `target`. */
  join(target: string): Promise<unknown>;
  log(level: "debug" | "info" | "warn", msg: string): void;
}

/** Resolves DNS records (`Deno.resolveDns` by default; tests pass their own). */
export type Resolver = (
  name: string,
  type: "A" | "AAAA" | "SRV",
  nameServer: { ipAddr: string; port?: number } | undefined,
) => Promise<Address[]>;

/** `Deno.resolveDns`, turned into addresses. */
export const denoResolver = (port?: number): Resolver => async (name, type, nameServer) => {
  const opts = nameServer === undefined ? {} : { nameServer };
  if (type === "SRV") {
    const records = await Deno.resolveDns(name, "SRV", opts);
    return records.map((r) => ({ hostname: r.target.replace(/\.$/, ""), port: r.port }));
  }
  const ips = await Deno.resolveDns(name, type, opts);
  return ips.map((ip) => ({ hostname: ip, port: port! }));
};

/** Checks discovery options; a `TypeError` or `RangeError` names the bad one. */
export function checkDiscovery(o: DiscoveryOptions):
  & Required<
    Pick<DiscoveryOptions, "retryMinMs" | "retryMaxMs">
  >
  & { seeds: Address[] } {
  if (typeof o !== "object" || o === null) throw new TypeError("discovery must be an object");
  const seeds = (o.seeds ?? []).map((s, i) => {
    try {
      return parseAddress(s);
    } catch (e) {
      throw new TypeError(`discovery.seeds[${i}]: ${(e as Error).message}`);
    }
  });
  const retryMinMs = numberOption("discovery.retryMinMs", o.retryMinMs, 500);
  const retryMaxMs = numberOption("discovery.retryMaxMs", o.retryMaxMs, 30_000, retryMinMs);
  if (o.dns !== undefined) {
    const d = o.dns;
    if (typeof d.name !== "string" || d.name.length === 0) {
      throw new TypeError("discovery.dns.name must be a non-empty string");
    }
    const type = d.type ?? (d.port === undefined ? "SRV" : "A");
    if (!["A", "AAAA", "SRV"].includes(type)) {
      throw new TypeError(`discovery.dns.type must be A, AAAA or SRV, got ${String(d.type)}`);
    }
    if (type !== "SRV" && !(Number.isInteger(d.port) && d.port! > 0 && d.port! < 65536)) {
      throw new RangeError(`discovery.dns.port must be a port for ${type} records, got ${d.port}`);
    }
    numberOption("discovery.dns.intervalMs", d.intervalMs, 5000);
  }
  if (seeds.length === 0 && o.dns === undefined) {
    throw new TypeError("discovery needs seeds or dns");
  }
  return { seeds, retryMinMs, retryMaxMs };
}

/** A running discovery: rounds on the clock until closed. */
export class Discovery {
  readonly #host: DiscoveryHost;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #resolve: Resolver;
  readonly #seeds: Address[];
  readonly #min: number;
  readonly #max: number;
  readonly #dns: DnsDiscoveryOptions | undefined;
  #failures = 0;
  #lastDns = -Infinity;
  #timer: TimerId | undefined;
  #closed = false;
  #running: Promise<void> = Promise.resolve();
  /** Counters: rounds, join attempts, joins, lookups that failed. */
  readonly stats = { rounds: 0, attempts: 0, joins: 0, lookupFailures: 0 };

  constructor(
    host: DiscoveryHost,
    options: DiscoveryOptions,
    clock: Clock,
    random: Random,
    resolve?: Resolver,
  ) {
    const c = checkDiscovery(options);
    this.#host = host;
    this.#clock = clock;
    this.#random = random;
    this.#seeds = c.seeds;
    this.#min = c.retryMinMs;
    this.#max = c.retryMaxMs;
    this.#dns = options.dns;
    this.#resolve = resolve ?? denoResolver(options.dns?.port);
  }

  /** Starts the rounds (the first at once). */
  start(): void {
    this.#schedule(0);
  }

  /** Stops; resolves once a round in progress ended. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    await this.#running;
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#round().catch((e) =>
        this.#host.log("warn", `discovery round failed: ${(e as Error).message}`)
      ).then(() => {});
    }, ms);
  }

  async #round(): Promise<void> {
    this.stats.rounds++;
    const alone = this.#host.members().filter((m) => m !== this.#host.name).length === 0;
    let joined = false, tried = 0;
    const known = this.#host.knownAddresses();
    const targets: Address[] = [];
    if (alone) targets.push(...this.#seeds);
    const now = this.#clock.now();
    const dnsEvery = this.#dns?.intervalMs ?? 5000;
    if (this.#dns !== undefined && now - this.#lastDns >= dnsEvery) {
      this.#lastDns = now;
      const type = this.#dns.type ?? (this.#dns.port === undefined ? "SRV" : "A");
      try {
        const found = await this.#resolve(this.#dns.name, type, this.#dns.nameServer);
        for (const a of found) if (!known.has(formatAddress(a))) targets.push(a);
      } catch (e) {
        this.stats.lookupFailures++;
        this.#host.log(
          "warn",
          `discovery: DNS lookup of ${type} "${this.#dns.name}" failed: ${(e as Error).message}`,
        );
      }
    }
    const seen = new Set<string>();
    for (const a of targets) {
      const text = formatAddress(a);
      if (seen.has(text) || this.#closed) continue;
      seen.add(text);
      tried++;
      this.stats.attempts++;
      try {
        await this.#host.join(text);
        this.stats.joins++;
        joined = true;
        this.#host.log("info", `discovery: joined the cluster through ${text}`);
      } catch (e) {
        this.#host.log("debug", `discovery: ${text} not joined: ${(e as Error).message}`);
      }
      if (joined && alone) break; // one seed is enough: the rest comes by gossip
    }
    if (this.#closed) return;
    const stillAlone = this.#host.members().filter((m) => m !== this.#host.name).length === 0;
    if (stillAlone && tried > 0 && !joined) {
      // Capped exponential backoff with jitter (half to all of the step).
      const step = Math.min(this.#max, this.#min * 2 ** Math.min(this.#failures, 30));
      this.#failures++;
      const wait = step * (0.5 + this.#random.next() / 2);
      this.#host.log("debug", `discovery: nothing answered; next round in ${Math.round(wait)} ms`);
      this.#schedule(this.#dns === undefined ? wait : Math.min(wait, dnsEvery));
      return;
    }
    this.#failures = 0;
    // Joined, or not alone: look again later (alone again, new DNS records).
    this.#schedule(this.#dns === undefined ? this.#max : Math.min(dnsEvery, this.#max));
  }
}
