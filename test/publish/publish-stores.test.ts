// The whole publishing cycle on every store that is not a directory: a
// version published, verified (signature, checksums, decompressed image),
// promoted, pruned, the channel verified again. The same commands and the
// same outcome as on the directory store (publish.test.ts covers the faults).

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listVersions, promote, prune } from '../../pipeline/publish/channel-ops.ts';
import { readChannel } from '../../pipeline/publish/channel.ts';
import { publish } from '../../pipeline/publish/publish.ts';
import { openStore } from '../../pipeline/publish/stores.ts';
import type { Store } from '../../pipeline/publish/store.ts';
import { verifyVersion } from '../../pipeline/publish/verify.ts';
import { makeImage, makeKeys, scratchDir, type Keys } from './publish-fixtures.ts';
import { registryAvailable, startRegistry, type Registry } from './registry-fixtures.ts';
import { BUCKET, s3Env, startS3 } from './s3-fixtures.ts';

interface StoreServer {
  url: string;
  stop(): Promise<void>;
}

function describeCycle(name: string, available: boolean, start: () => Promise<StoreServer>) {
  describe.skipIf(!available)(`publishing cycle on ${name}`, () => {
    let server: StoreServer | undefined;
    let store: Store;
    let tmp: Awaited<ReturnType<typeof scratchDir>>;
    let keys: Keys;

    beforeAll(async () => {
      tmp = await scratchDir('hnforge-publish-cycle-');
      keys = await makeKeys(join(tmp.dir, 'keys'));
      server = await start();
      store = await openStore(server.url);
    }, 180_000);
    afterAll(async () => {
      await store?.close();
      await server?.stop();
      await tmp?.cleanup();
    });

    it('publish two versions, verify, promote the first to stable, prune nightly to one, verify both channels', async () => {
      const trust = { keyring: await readFile(keys.keyring), allowUnsigned: false };
      const ref = { profile: 'hn-test', channel: 'nightly' };
      for (const v of ['20261201.1', '20261202.1']) {
        const { image } = await makeImage(join(tmp.dir, v), { version: v });
        expect((await publish({ image, store, channel: 'nightly', signingKey: keys.key, lockWaitMs: 5000 })).alreadyPublished).toBe(false);
      }
      expect((await verifyVersion({ store, ref, trust })).version).toBe('20261202.1');
      const opts = { store, profile: 'hn-test', signingKey: keys.key, trust, lockWaitMs: 5000 };
      await promote({ ...opts, version: '20261201.1', to: 'stable' });
      const pruned = await prune({ ...opts, keep: 1 });
      expect(pruned.map((r) => [r.channel, r.removed])).toEqual([['nightly', ['20261201.1']], ['stable', []]]);
      await verifyVersion({ store, ref: { profile: 'hn-test', channel: 'stable' }, trust });
      await verifyVersion({ store, ref, trust });
      expect((await readChannel(store, ref, trust)).versions).toEqual(['20261202.1']);
      expect((await listVersions(store, trust, 'hn-test')).map((c) => [c.channel, c.head])).toEqual([['nightly', '20261202.1'], ['stable', '20261201.1']]);
    }, 300_000);
  });
}

describeCycle('[root] an OCI registry (docker-registry)', registryAvailable, async () => {
  const registry: Registry = await startRegistry({ deleteEnabled: true });
  return { url: `oci://127.0.0.1:${registry.port}/hn`, stop: () => registry.stop() };
});

describeCycle('an S3 bucket (s3rver)', true, async () => {
  const s3 = await startS3();
  const restore = s3Env(s3.endpoint);
  return {
    url: `s3://${BUCKET}/images`,
    stop: async () => {
      restore();
      await s3.stop();
    },
  };
});
