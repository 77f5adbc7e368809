/**
 * A bank as one durable server: transfers between accounts are atomic because
 * each message is applied to the whole state in one commit, and a transfer
 * that would overdraw is refused without any partial effect. Audit lines are
 * an action: they run once, after the commit.
 *
 *   deno run --unstable-kv examples/bank.ts
 *
 * @module
 */

import { DenoKvStorage, type DurableBehaviour, DurableServer } from "../mod.ts";

/** Balances by account, in cents. */
export type Accounts = Record<string, number>;
/** Requests the bank answers. */
export type BankCall =
  | { open: string; deposit: number }
  | { transfer: { from: string; to: string; amount: number } }
  | { balance: string };
/** Answers of the bank. */
export type BankReply = { ok: true; balance?: number } | { ok: false; error: string };

/** Builds the bank behaviour; `audit` receives one line per committed transfer. */
export function bank(
  audit: (line: string) => void,
): DurableBehaviour<Accounts, BankCall, never, never, BankReply> {
  return {
    init: () => ({ state: {} }),
    handleCall: (msg, _from, accounts) => {
      if ("open" in msg) {
        if (msg.open in accounts) return { reply: { ok: false, error: "exists" }, state: accounts };
        return {
          reply: { ok: true, balance: msg.deposit },
          state: { ...accounts, [msg.open]: msg.deposit },
        };
      }
      if ("balance" in msg) {
        const b = accounts[msg.balance];
        return {
          reply: b === undefined
            ? { ok: false, error: "no such account" }
            : { ok: true, balance: b },
          state: accounts,
        };
      }
      const { from, to, amount } = msg.transfer;
      const a = accounts[from], b = accounts[to];
      if (a === undefined || b === undefined) {
        return { reply: { ok: false, error: "no such account" }, state: accounts };
      }
      if (!(amount > 0) || a < amount) {
        return { reply: { ok: false, error: "insufficient funds" }, state: accounts };
      }
      const next = { ...accounts, [from]: a - amount, [to]: b + amount };
      return {
        reply: { ok: true, balance: a - amount },
        state: next,
        actions: [() => audit(`${from} -> ${to}: ${amount}`)],
      };
    },
    handleCast: (_msg, accounts) => ({ state: accounts }),
  };
}

if (import.meta.main) {
  await using storage = await DenoKvStorage.open(":memory:");
  await using b = await DurableServer.start(bank(console.log), null, { storage, tenant: ["bank"] });
  await b.call({ open: "alice", deposit: 100 });
  await b.call({ open: "bob", deposit: 20 });
  console.log(await b.call({ transfer: { from: "alice", to: "bob", amount: 70 } })); // { ok: true, balance: 30 }
  console.log(await b.call({ transfer: { from: "alice", to: "bob", amount: 70 } })); // insufficient funds
  console.log(await b.call({ balance: "bob" })); // { ok: true, balance: 90 }
}
