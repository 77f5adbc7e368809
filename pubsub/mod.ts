/**
 * Topic publish/subscribe across the cluster (Phoenix.PubSub's PG adapter):
 * subscribers on any node, publishers on any node, one frame per node with
 * subscribers and none to a node without. Typed topics carry their message
 * type and, if given, a Standard Schema that each subscriber checks.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * import { PubSub, topic } from "@murmur/murmur/pubsub";
 * const prices = topic<{ sku: string; cents: number }>("prices");
 * await using a = await Node.start({ name: "a", cookie: "c" });
 * await using ps = await PubSub.start(a);
 * const seen: number[] = [];
 * await ps.subscribe(prices, (m) => void seen.push(m.cents));
 * const r = await ps.publish(prices, { sku: "tea", cents: 350 });
 * console.log(r.nodes); // 1
 * ```
 *
 * @module
 */

export {
  DEFAULT_PUBLISH_ACK_TIMEOUT_MS,
  DEFAULT_PUBSUB_QUEUE_MAX,
  type PublishOptions,
  type PublishResult,
  PubSub,
  type PubSubOptions,
  type PubSubStats,
  type SubscribeOptions,
  type TopicHandler,
} from "./pubsub.ts";
export { type PubSubContext, type Topic, topic, TOPIC_LENGTH_MAX } from "./topic.ts";
