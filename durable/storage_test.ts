import { DenoKvStorage, MemoryStorage } from "./mod.ts";
import { testStorage } from "../testing.ts";

testStorage("memory", { open: () => Promise.resolve(new MemoryStorage()) });

testStorage("deno kv :memory:", { open: () => DenoKvStorage.open(":memory:") });

const files = new Map<DenoKvStorage, string>();
testStorage("deno kv file", {
  open: async () => {
    const path = await Deno.makeTempFile({ prefix: "murmur-kv-", suffix: ".sqlite" });
    const db = await DenoKvStorage.open(path, { pollIntervalMs: 20 });
    files.set(db, path);
    return {
      limits: db.limits,
      get: (k) => db.get(k),
      getMany: (k) => db.getMany(k),
      list: (s, o) => db.list(s, o),
      commit: (c, m) => db.commit(c, m),
      watch: (k, s) => db.watch(k, s),
      close: async () => {
        await db.close();
        for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(path + suffix).catch(() => {});
      },
      [Symbol.asyncDispose]: () => db.close(),
      path,
    } as DenoKvStorage & { path: string };
  },
  reopen: (first) =>
    DenoKvStorage.open((first as unknown as { path: string }).path, { pollIntervalMs: 20 }),
});
