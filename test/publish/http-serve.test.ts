// What any web server makes of a directory store: Debian's nginx-light on
// 127.0.0.1 serving it, and a reader doing what a node's updater does over
// HTTP: SHA256SUMS and its signature checked with gpgv, the artifact fetched
// in two range requests (a resumed download) and checked against SHA256SUMS.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publish } from '../../pipeline/publish/publish.ts';
import { FileStore } from '../../pipeline/publish/store-file.ts';
import { versionFiles } from '../../pipeline/publish/store.ts';
import { parseSums } from '../../pipeline/publish/sums.ts';
import { makeImage, makeKeys, scratchDir, type Keys } from './publish-fixtures.ts';
import { ensureDebianPackage, freePort } from './registry-fixtures.ts';
import { startNginx, type Nginx } from './nginx-fixture.ts';

const sh = promisify(execFile);
const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('[root] a directory store served by nginx-light', () => {
  let tmp: Awaited<ReturnType<typeof scratchDir>>;
  let keys: Keys;
  let nginx: Nginx | undefined;

  beforeAll(async () => {
    if (!(await ensureDebianPackage('/usr/sbin/nginx', 'nginx-light'))) throw new Error('nginx-light could not be installed');
    tmp = await scratchDir('hnforge-http-store-');
    keys = await makeKeys(join(tmp.dir, 'keys'));
    const { image } = await makeImage(join(tmp.dir, 'img'), { version: '20261202.3' });
    await publish({ image, store: new FileStore(join(tmp.dir, 'store')), channel: 'nightly', signingKey: keys.key, lockWaitMs: 1000 });
    nginx = await startNginx({ root: join(tmp.dir, 'store'), port: await freePort(), workDir: join(tmp.dir, 'nginx') });
  });
  afterAll(async () => {
    await nginx?.stop();
    await tmp?.cleanup();
  });

  it('serves SHA256SUMS that gpgv verifies, and the artifact by ranges, matching SHA256SUMS', async () => {
    const base = `${nginx!.url}/hn-test/nightly`;
    const get = async (name: string, headers: Record<string, string> = {}) => {
      const r = await fetch(`${base}/${name}`, { headers, signal: AbortSignal.timeout(30_000) });
      return { status: r.status, bytes: Buffer.from(await r.arrayBuffer()) };
    };
    const sums = await get('SHA256SUMS');
    const sig = await get('SHA256SUMS.gpg');
    expect([sums.status, sig.status]).toEqual([200, 200]);
    await writeFile(join(tmp.dir, 'SHA256SUMS'), sums.bytes);
    await writeFile(join(tmp.dir, 'SHA256SUMS.gpg'), sig.bytes);
    await sh('gpgv', ['--keyring', keys.keyring, join(tmp.dir, 'SHA256SUMS.gpg'), join(tmp.dir, 'SHA256SUMS')]);

    const name = versionFiles('20261202.3').artifact;
    const want = parseSums(sums.bytes.toString('utf8')).get(name)!;
    const whole = await readFile(join(tmp.dir, 'store', 'hn-test', 'nightly', name));
    const cut = Math.floor(whole.length / 3);
    const first = await get(name, { Range: `bytes=0-${cut - 1}` });
    const rest = await get(name, { Range: `bytes=${cut}-` });
    expect([first.status, rest.status]).toEqual([206, 206]);
    expect(createHash('sha256').update(Buffer.concat([first.bytes, rest.bytes])).digest('hex')).toBe(want);
  });

  it('a file that is not there is a 404, not an empty success', async () => {
    const r = await fetch(`${nginx!.url}/hn-test/nightly/${versionFiles('19990101.1').artifact}`, { signal: AbortSignal.timeout(30_000) });
    expect(r.status).toBe(404);
  });
});
