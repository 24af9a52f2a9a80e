// Cache keys and fast content digests (xxh64). Keys are computed from a stable
// JSON form so that key order in a profile file does not change a key.

import xxhash from 'xxhash-wasm';
import { createReadStream } from 'node:fs';

let api: Awaited<ReturnType<typeof xxhash>> | undefined;
async function hasher() {
  api ??= await xxhash();
  return api;
}

/** JSON with object keys sorted, so equal data always serialises the same way. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

export async function hashValue(value: unknown): Promise<string> {
  const { h64ToString } = await hasher();
  return h64ToString(stableJson(value));
}

export async function hashFile(path: string): Promise<string> {
  const { create64 } = await hasher();
  const h = create64();
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Uint8Array);
  return h.digest().toString(16).padStart(16, '0');
}
