// deno bench: the wire codec and framing.
import { decodeMessage, encodeValue, Tag } from "../protocol.ts";
import { encodeFrames } from "../membership/mod.ts";

const payload100 = "x".repeat(100);
const msg = [Tag.Msg, "echo", payload100];
const call = [Tag.Call, 12345, "kv", { op: "put", key: "user:42", value: { name: "ada", n: 7 } }];
const spec = (i: number) => ({
  name: `node-${i}`,
  incarnation: 1_795_000_000_000 + i,
  listenAddrs: [{ hostname: "127.0.0.1", port: 7000 + i }],
  channels: { default: { parallelism: 1, monotonic: false } },
});
const gossip32 = [Tag.Gossip, Array.from({ length: 32 }, (_, i) => [spec(i), false])];
const msgBytes = encodeValue(msg);
const callBytes = encodeValue(call);
const gossipBytes = encodeValue(gossip32);
const batch = Array.from({ length: 64 }, () => msgBytes);

Deno.bench("encode Msg (100 B payload)", { group: "encode", baseline: true }, () => {
  encodeValue(msg);
});
Deno.bench("encode Call (small object)", { group: "encode" }, () => {
  encodeValue(call);
});
Deno.bench("encode Gossip (32 specs)", { group: "encode" }, () => {
  encodeValue(gossip32);
});
Deno.bench("decode+validate Msg (100 B payload)", { group: "decode", baseline: true }, () => {
  decodeMessage(msgBytes);
});
Deno.bench("decode+validate Call (small object)", { group: "decode" }, () => {
  decodeMessage(callBytes);
});
Deno.bench("decode+validate Gossip (32 specs)", { group: "decode" }, () => {
  decodeMessage(gossipBytes);
});
Deno.bench("frame a batch of 64 Msg", { group: "framing" }, () => {
  encodeFrames(batch);
});
