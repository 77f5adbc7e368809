/**
 * Data publishers (OTP's `data_publisher`): replicated data where each node is
 * the single writer of its own part; process groups (`pg` parity) and
 * presence built on them.
 *
 * @example
 * ```ts
 * import { Node } from "@murmur/murmur/membership";
 * import { ProcessGroups } from "@murmur/murmur/publisher";
 * await using node = await Node.start({ name: "a", cookie: "c" });
 * await using pg = await ProcessGroups.start(node);
 * console.log(pg.whichGroups()); // []
 * ```
 *
 * @module
 */

export { DataPublisher, type DataPublisherOptions, type PublisherStats } from "./data_publisher.ts";
export {
  DEFAULT_FULL_BATCH_MAX,
  DEFAULT_FUTURE_MAX,
  DEFAULT_ORIGINS_MAX,
  DEFAULT_PROBE_INTERVAL_MS,
  DEFAULT_RECENT_MAX,
  DEFAULT_SUMMARY_BUCKETS_MAX,
  DEFAULT_SYNC_INTERVAL_MS,
  DEFAULT_TOMBSTONE_MS,
  DEFAULT_VERSIONS_MAX,
} from "./defaults.ts";
export {
  isVersion,
  type Listener,
  type PlainMessages,
  type PublisherModule,
  Subscriptions,
  type TranslatedMessage,
  type Version,
} from "./module.ts";
export {
  GROUP_NAME_LENGTH_MAX,
  type Member,
  type MemberIds,
  type PgEvent,
  type PgLocal,
  pgModule,
  type PgSub,
  type PgUpdate,
  type PgView,
  ProcessGroups,
} from "./process_groups.ts";
export {
  Presence,
  PRESENCE_NAME_LENGTH_MAX,
  type PresenceDiff,
  type PresenceLocal,
  type PresenceMeta,
  presenceModule,
  type PresenceOptions,
  type PresenceUpdate,
  type PresenceView,
} from "./presence.ts";
