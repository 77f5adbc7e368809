// The messages publishers exchange, and their shape checks. Module-private.

import { isVersion, type PlainMessages, type Version } from "./module.ts";

export type Wire =
  | ["discover", string, Version]
  | ["local_data", string, Version, unknown, number]
  | ["update", string, number, unknown]
  | ["plain", string, number, unknown[]]
  | ["plain", string, number, unknown[], 1]
  | ["tick", string, number]
  | ["resync", string]
  | ["bye", string];

export function isWire(v: unknown): v is Wire {
  if (!Array.isArray(v) || typeof v[1] !== "string") return false;
  switch (v[0]) {
    case "discover":
      return v.length === 3 && isVersion(v[2]);
    case "local_data":
      return v.length === 5 && isVersion(v[2]) && Number.isSafeInteger(v[4]);
    case "update":
      return v.length === 4 && Number.isSafeInteger(v[2]);
    case "plain":
      // A fifth element 1: the plain form of full local data (it covers every update up to the sequence).
      return (v.length === 4 || (v.length === 5 && v[4] === 1)) && Number.isSafeInteger(v[2]) &&
        Array.isArray(v[3]);
    case "tick":
      return v.length === 3 && Number.isSafeInteger(v[2]);
    case "resync":
    case "bye":
      return v.length === 2;
  }
  return false;
}

export function isPlain(v: unknown): v is PlainMessages {
  return typeof v === "object" && v !== null && Array.isArray((v as PlainMessages).plainMessages) &&
    Object.keys(v).length === 1;
}
