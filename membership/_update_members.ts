// Declarative membership (the seed's `update_members/1`): an orchestrator
// knows the member list; one call joins the listed nodes that are not
// members and removes the members no longer listed that are down (a live
// member leaves by itself: it is reported as kept). Never this node.
// Module-private: `Node.updateMembers` is the face.

import type { NodeSpec } from "./spec.ts";
import type { MemberInfo } from "./node_types.ts";

/** What `Node.updateMembers` changed. */
export interface UpdateMembersResult {
  /** Targets joined (by the name they answered with). */
  joined: string[];
  /** Members no longer listed, down, removed (`leave(name)`). */
  removed: string[];
  /** Members no longer listed but up: a live member leaves by itself, so they stay. */
  kept: string[];
  /** Targets that could not be joined, with why. */
  failed: { target: string; error: string }[];
}

/** What `updateMembers` needs of a node. */
export interface UpdateMembersHost {
  readonly name: string;
  memberInfo(): MemberInfo[];
  join(target: NodeSpec | string, options: { timeoutMs?: number }): Promise<{ node: string }>;
  leave(name: string): Promise<void>;
}

/** Joins the listed, removes the unlisted that are down; see the module comment. */
export async function updateMembers(
  node: UpdateMembersHost,
  targets: readonly (NodeSpec | string)[],
  options: { timeoutMs?: number } = {},
): Promise<UpdateMembersResult> {
  if (!Array.isArray(targets)) {
    throw new TypeError("updateMembers takes an array of specs or host:port");
  }
  const out: UpdateMembersResult = { joined: [], removed: [], kept: [], failed: [] };
  const info = node.memberInfo();
  const byAddress = new Map(info.flatMap((m) => (m.address ? [[m.address, m.name]] : [])));
  const listed = new Set<string>([node.name]);
  const toJoin: (NodeSpec | string)[] = [];
  for (const t of targets) {
    if (typeof t === "string") {
      const known = byAddress.get(t);
      if (known !== undefined && info.find((m) => m.name === known)?.state === "up") {
        listed.add(known);
      } else toJoin.push(t);
    } else if (typeof t === "object" && t !== null && typeof t.name === "string") {
      listed.add(t.name);
      if (t.name !== node.name && info.find((m) => m.name === t.name)?.state !== "up") {
        toJoin.push(t);
      }
    } else {throw new TypeError(
        `updateMembers: ${JSON.stringify(t)} is neither a spec nor host:port`,
      );}
  }
  await Promise.all(toJoin.map(async (t) => {
    const target = typeof t === "string" ? t : t.name;
    try {
      const r = await node.join(t, options);
      listed.add(r.node);
      out.joined.push(r.node);
    } catch (e) {
      out.failed.push({ target, error: (e as Error).message });
    }
  }));
  for (const m of node.memberInfo()) {
    if (listed.has(m.name) || m.self || m.state === "left" || m.state === "removed") continue;
    if (m.state === "up") {
      out.kept.push(m.name);
      continue;
    }
    try {
      await node.leave(m.name);
      out.removed.push(m.name);
    } catch {
      out.kept.push(m.name); // came up meanwhile
    }
  }
  for (const k of ["joined", "removed", "kept"] as const) out[k].sort();
  return out;
}
