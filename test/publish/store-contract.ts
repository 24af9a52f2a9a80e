// One behaviour suite that every store (file, s3, oci) must pass: what the
// common publish code relies on. Each store's test file calls
// describeStoreContract with a factory for a fresh, empty store.

import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HnError } from '../../pipeline/errors.ts';
import type { ChannelRef, Store, StoredFile, Upload } from '../../pipeline/publish/store.ts';

export interface StoreUnderTest {
  store: Store;
  /** Stops servers, removes directories. */
  cleanup(): Promise<void>;
}

/** Whether removeFiles without lastReference keeps content reachable from the channel (OCI shares blobs). */
export interface ContractOptions {
  /** A store whose payload is shared by every channel of a profile (OCI): removal only frees with lastReference. */
  sharedPayload?: boolean;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export function upload(name: string, bytes: Uint8Array): Upload {
  return { name, sha256: sha(bytes), size: bytes.length, source: { bytes } };
}

export async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function failure(p: Promise<unknown>): Promise<HnError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HnError) return e;
    throw e;
  }
  throw new Error('expected an HnError, got success');
}

export function describeStoreContract(name: string, make: () => Promise<StoreUnderTest>, opts: ContractOptions = {}) {
  describe(`store contract: ${name}`, () => {
    let under: StoreUnderTest;
    let store: Store;
    let scratch: string;
    const nightly: ChannelRef = { profile: 'test-min', channel: 'nightly' };
    const stable: ChannelRef = { profile: 'test-min', channel: 'stable' };

    beforeAll(async () => {
      under = await make();
      store = under.store;
      scratch = await mkdtemp(join(tmpdir(), 'hnforge-store-contract-'));
    }, 120_000);
    afterAll(async () => {
      await store?.close();
      await under?.cleanup();
      if (scratch) await rm(scratch, { recursive: true, force: true });
    });

    it('an empty store has no profiles, channels or index', async () => {
      expect(await store.profiles()).toEqual([]);
      expect(await store.channels('test-min')).toEqual([]);
      expect(await store.readIndex(nightly)).toEqual({});
    });

    it('stores payload from bytes and from a file, and reads back exactly those bytes', async () => {
      const small = upload('hn-root_1.json', Buffer.from('{"version":"1"}\n'));
      const bigBytes = randomBytes(9 * 1024 * 1024 + 13); // more than one chunk of any upload
      const path = join(scratch, 'big');
      await writeFile(path, bigBytes);
      const big: Upload = { name: 'hn-root_1.img.zst', sha256: sha(bigBytes), size: bigBytes.length, source: { path } };
      expect((await store.putFiles(nightly, '1', [small, big])).linked).toEqual([]); // nothing was disposable
      expect((await bytesOf(await store.readFile(nightly, small))).toString()).toBe('{"version":"1"}\n');
      expect(sha(await bytesOf(await store.readFile(nightly, big)))).toBe(big.sha256);
    }, 120_000);

    it('putting the same content again is a no-op; other content under a published name is refused', async () => {
      const same = upload('hn-root_1.json', Buffer.from('{"version":"1"}\n'));
      await store.putFiles(nightly, '1', [same]);
      const other = upload('hn-root_1.json', Buffer.from('{"version":"1","tampered":true}\n'));
      const e = await failure(store.putFiles(nightly, '1', [other]));
      expect(e.code).toBe('EPUBLISH_EXISTS');
      expect((await bytesOf(await store.readFile(nightly, same))).toString()).toBe('{"version":"1"}\n');
    });

    it('a channel exists once its index is written; the signature can be replaced and removed', async () => {
      const sums = Buffer.from(`${'a'.repeat(64)} *hn-root_1.json\n`);
      await store.writeIndex(nightly, sums, Buffer.from('sig-1'));
      expect(await store.channels('test-min')).toEqual(['nightly']);
      expect(await store.profiles()).toEqual(['test-min']);
      let index = await store.readIndex(nightly);
      expect(Buffer.from(index.sums!).toString()).toBe(sums.toString());
      expect(Buffer.from(index.signature!).toString()).toBe('sig-1');
      await store.writeIndex(nightly, sums, undefined);
      index = await store.readIndex(nightly);
      expect(index.signature).toBeUndefined();
      expect(Buffer.from(index.sums!).toString()).toBe(sums.toString());
    });

    it('copies a version into another channel without changing its bytes', async () => {
      const file: StoredFile = { name: 'hn-root_1.json', sha256: sha(Buffer.from('{"version":"1"}\n')), size: 16 };
      await store.copyFiles(nightly, stable, '1', [file]);
      expect((await bytesOf(await store.readFile(stable, file))).toString()).toBe('{"version":"1"}\n');
      // Copying again is a no-op.
      await store.copyFiles(nightly, stable, '1', [file]);
    });

    it('removing a version from one channel leaves the other channel\'s copy readable', async () => {
      const file: StoredFile = { name: 'hn-root_1.json', sha256: sha(Buffer.from('{"version":"1"}\n')), size: 16 };
      await store.removeFiles(nightly, '1', [file], false);
      expect((await bytesOf(await store.readFile(stable, file))).toString()).toBe('{"version":"1"}\n');
      if (!opts.sharedPayload) expect((await failure(store.readFile(nightly, file))).code).toBe('EPUBLISH_MISSING');
      await store.removeFiles(stable, '1', [file], true);
      expect((await failure(store.readFile(stable, file))).code).toBe('EPUBLISH_MISSING');
      // Absent files are fine.
      await store.removeFiles(stable, '1', [file], true);
    });

    it('a missing file is EPUBLISH_MISSING', async () => {
      const e = await failure(store.readFile(nightly, { name: 'hn-root_9.json', sha256: 'c'.repeat(64), size: 1 }));
      expect(e.code).toBe('EPUBLISH_MISSING');
    });

    it('the publish lock is exclusive, names its holder, and is free again once released', async () => {
      const first = await store.lock('test-min', 0);
      const e = await failure(store.lock('test-min', 300));
      expect(e.code).toBe('EPUBLISH_BUSY');
      expect(e.message).toMatch(/pid \d+/);
      // Another profile is not blocked.
      const other = await store.lock('other-profile', 0);
      await other.release();
      await first.release();
      const again = await store.lock('test-min', 0);
      await again.release();
    });

    it('a waiting locker gets the lock when the holder releases it within the wait', async () => {
      const first = await store.lock('test-min', 0);
      setTimeout(() => void first.release(), 300);
      const second = await store.lock('test-min', 10_000);
      await second.release();
    });
  });
}
