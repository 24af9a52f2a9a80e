// [contract] Fetch and verification of a stage3 against a mirror served on
// 127.0.0.1 by the test, with a throwaway OpenPGP key. The download, gpgv,
// SHA512/BLAKE2B and cache code run for real.
// NOT verified here: Gentoo's real mirrors, their exact index and DIGESTS
// formatting today, Gentoo's release key, HTTPS, redirects between mirrors.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { appendFile, readdir, readFile, rm, truncate, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HnError } from '../../pipeline/errors.ts';
import { fetchVerifiedStage3, gentooCachePaths, pruneStage3Cache, type Stage3Request } from '../../pipeline/gentoo/stage3.ts';
import { download } from '../../pipeline/gentoo/download.ts';
import { makeTestKey, publishStage3, serveMirror, stage3Entries, tempDir, writeIndex, type Mirror, type Release, type TestKey } from './fixtures.ts';

let key: TestKey;
let stranger: TestKey;
let mirrorRoot: string;
let mirror: Mirror;
let release: Release;
let cache: string;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HnError) return e.code;
    throw e;
  }
  return 'no error';
}

const request = (over: Partial<Stage3Request> = {}): Stage3Request => ({
  mirrors: [mirror.url],
  variant: 'systemd',
  stage3: 'latest',
  fingerprint: key.fingerprint,
  keyringFile: key.publicKeyFile,
  cacheDir: cache,
  tmpDir: join(cache, 'tmp'),
  ...over,
});

/** Nothing verified may be in the cache's blob store after a refusal. */
async function blobs(): Promise<string[]> {
  return readdir(gentooCachePaths(cache).blobs).catch(() => []);
}

describe('[contract] stage3 fetch and verification (local mirror, throwaway key)', () => {
  beforeAll(async () => {
    key = await makeTestKey();
    stranger = await makeTestKey('someone else');
    mirrorRoot = await tempDir('hnforge-mirror-');
    mirror = await serveMirror(mirrorRoot);
    release = await publishStage3(mirrorRoot, key);
  });
  afterAll(async () => {
    await mirror?.close();
    for (const d of [mirrorRoot, key?.home, stranger?.home]) if (d) await rm(d, { recursive: true, force: true });
  });
  beforeEach(async () => {
    cache = await tempDir('hnforge-cache-');
    mirror.requests.length = 0;
    mirror.faults.length = 0;
    release = await publishStage3(mirrorRoot, key);
  });

  it('resolves latest from the signed index, downloads, verifies and caches by digest; the second run downloads nothing', async () => {
    const progress: number[] = [];
    const v = await fetchVerifiedStage3(request({ onProgress: (p) => progress.push(p.received) }));
    expect(v.timestamp).toBe(release.timestamp);
    expect(v.url).toBe(`${mirror.url}${release.path}`);
    expect(v.bytes).toBe(release.bytes);
    expect(v.path).toBe(join(gentooCachePaths(cache).blobs, `${v.sha512}.tar.xz`));
    expect(v.fromCache).toBe(false);
    expect(await blobs()).toEqual([`${v.sha512}.tar.xz`]);

    mirror.requests.length = 0;
    const again = await fetchVerifiedStage3(request());
    expect(again.fromCache).toBe(true);
    expect(again.sha512).toBe(v.sha512);
    expect(mirror.requests.map((r) => r.path)).toEqual(['/releases/amd64/autobuilds/latest-stage3-amd64-systemd.txt']);
  });

  it('a pinned timestamp works offline once cached', async () => {
    await fetchVerifiedStage3(request({ stage3: release.timestamp }));
    await mirror.close();
    try {
      const v = await fetchVerifiedStage3(request({ stage3: release.timestamp, mirrors: ['http://127.0.0.1:9/'] }));
      expect(v.fromCache).toBe(true);
    } finally {
      mirror = await serveMirror(mirrorRoot);
    }
  });

  it('accepts an unsigned (legacy) DIGESTS because the tarball signature is checked anyway', async () => {
    release = await publishStage3(mirrorRoot, key, { clearsignDigests: false });
    const v = await fetchVerifiedStage3(request());
    expect(v.sha512).toMatch(/^[0-9a-f]{128}$/);
  });

  it('resumes a broken download with a Range request', async () => {
    const url = `${mirror.url}${release.path}`;
    const dest = join(cache, 'resume', 'file');
    mirror.faults.push({ kind: 'truncate', path: `/${release.path}`, afterBytes: 1000 });
    expect(await codeOf(download(url, dest, { expectedBytes: release.bytes }))).toBe('EGENTOO_TRUNCATED');
    mirror.faults.length = 0;
    await download(url, dest, { expectedBytes: release.bytes });
    expect(mirror.requests.at(-1)).toMatchObject({ range: 'bytes=1000-', status: 206 });
    expect((await readFile(dest)).equals(await readFile(release.tarball))).toBe(true);
  });

  it('refuses a tarball whose detached signature is by another key: EGENTOO_SIGNATURE, nothing kept', async () => {
    await stranger.detachSign(release.tarball);
    expect(await codeOf(fetchVerifiedStage3(request()))).toBe('EGENTOO_SIGNATURE');
    expect(await blobs()).toEqual([]);
    expect(await readdir(gentooCachePaths(cache).downloads)).toEqual([]);
  });

  it('refuses a tarball altered after signing: EGENTOO_SIGNATURE', async () => {
    await appendFile(release.tarball, 'tampered');
    await writeIndex(mirrorRoot, key, 'systemd', [`${release.timestamp}/${release.fileName} ${release.bytes + 8}`]);
    expect(await codeOf(fetchVerifiedStage3(request()))).toBe('EGENTOO_SIGNATURE');
    expect(await blobs()).toEqual([]);
  });

  it('refuses a tarball whose digests do not match .DIGESTS: EGENTOO_DIGEST', async () => {
    const digests = `${release.tarball}.DIGESTS`;
    const text = (await readFile(digests, 'utf8')).split('\n');
    const body = text.slice(text.indexOf('') + 1, text.indexOf('-----BEGIN PGP SIGNATURE-----')).join('\n');
    const wrong = body.replace(/^[0-9a-f]{128}(  stage3-amd64-systemd-\d+T\d+Z\.tar\.xz)$/m, `${'e'.repeat(128)}$1`);
    expect(wrong).not.toBe(body);
    await key.clearsign(wrong, digests);
    expect(await codeOf(fetchVerifiedStage3(request()))).toBe('EGENTOO_DIGEST');
    expect(await blobs()).toEqual([]);
  });

  it('refuses a .DIGESTS clearsigned by another key: EGENTOO_SIGNATURE', async () => {
    const digests = `${release.tarball}.DIGESTS`;
    const text = (await readFile(digests, 'utf8')).split('\n');
    await stranger.clearsign(text.slice(text.indexOf('') + 1, text.indexOf('-----BEGIN PGP SIGNATURE-----')).join('\n'), digests);
    expect(await codeOf(fetchVerifiedStage3(request()))).toBe('EGENTOO_SIGNATURE');
  });

  it('refuses a truncated download: EGENTOO_TRUNCATED, the partial file kept for resume, nothing verified', async () => {
    mirror.faults.push({ kind: 'truncate', path: `/${release.path}`, afterBytes: Math.floor(release.bytes / 2) });
    expect(await codeOf(fetchVerifiedStage3(request()))).toBe('EGENTOO_TRUNCATED');
    expect(await blobs()).toEqual([]);
    expect(await readdir(gentooCachePaths(cache).downloads)).toEqual([`${release.fileName}.part`]);
  });

  it('refuses a mirror serving a shorter file than the signed index says: EGENTOO_TRUNCATED', async () => {
    await truncate(release.tarball, release.bytes - 100);
    expect(await codeOf(fetchVerifiedStage3(request()))).toBe('EGENTOO_TRUNCATED');
    expect(await blobs()).toEqual([]);
  });

  it('refuses an index that points to a missing file: EGENTOO_MISSING_FILE', async () => {
    await writeIndex(mirrorRoot, key, 'systemd', ['20990101T000000Z/stage3-amd64-systemd-20990101T000000Z.tar.xz 1234']);
    expect(await codeOf(fetchVerifiedStage3(request()))).toBe('EGENTOO_MISSING_FILE');
    expect(await blobs()).toEqual([]);
  });

  it('refuses an index clearsigned by another key: EGENTOO_INDEX_SIGNATURE', async () => {
    await writeIndex(mirrorRoot, stranger, 'systemd', [`${release.timestamp}/${release.fileName} ${release.bytes}`]);
    expect(await codeOf(fetchVerifiedStage3(request()))).toBe('EGENTOO_INDEX_SIGNATURE');
  });

  it('ignores text outside the signed part of the index', async () => {
    const index = await writeIndex(mirrorRoot, key, 'systemd', [`${release.timestamp}/${release.fileName} ${release.bytes}`]);
    await appendFile(index, '\n20990101T000000Z/stage3-amd64-systemd-20990101T000000Z.tar.xz 1\n');
    const v = await fetchVerifiedStage3(request());
    expect(v.timestamp).toBe(release.timestamp);
  });

  it('refuses to work without the keyring: EGENTOO_KEYRING', async () => {
    expect(await codeOf(fetchVerifiedStage3(request({ keyringFile: undefined })))).toBe('EGENTOO_KEYRING');
    expect(await codeOf(fetchVerifiedStage3(request({ keyringFile: join(cache, 'nope.asc') })))).toBe('EGENTOO_KEYRING');
    const junk = join(cache, 'junk.asc');
    await mkdir(cache, { recursive: true });
    await writeFile(junk, 'not a key');
    expect(await codeOf(fetchVerifiedStage3(request({ keyringFile: junk })))).toBe('EGENTOO_KEYRING');
  });

  it('refuses an oversized index without reading it all: EGENTOO_DOWNLOAD', async () => {
    await writeFile(join(mirrorRoot, 'releases/amd64/autobuilds/latest-stage3-amd64-systemd.txt'), Buffer.alloc(2 * 1024 * 1024, 'a'));
    expect(await codeOf(fetchVerifiedStage3(request()))).toBe('EGENTOO_DOWNLOAD');
  });

  it('falls back to the next mirror when the first does not answer', async () => {
    const v = await fetchVerifiedStage3(request({ mirrors: ['http://127.0.0.1:9/', mirror.url] }));
    expect(v.url.startsWith(mirror.url)).toBe(true);
  });

  it('a corrupted cache entry is detected and fetched again', async () => {
    const v = await fetchVerifiedStage3(request());
    await appendFile(v.path, 'bitrot');
    const again = await fetchVerifiedStage3(request());
    expect(again.fromCache).toBe(false);
    expect(again.sha512).toBe(v.sha512);
  });

  it('keeps the tarballs of the two newest releases when pruning the cache', async () => {
    const timestamps = ['20260419T164604Z', '20260426T164604Z', '20260503T164604Z'];
    const hashes: string[] = [];
    for (const ts of timestamps) {
      const r = await publishStage3(mirrorRoot, key, { timestamp: ts, entries: stage3Entries([{ name: './etc/release', content: ts }]) });
      const v = await fetchVerifiedStage3(request({ stage3: r.timestamp }));
      hashes.push(v.sha512);
    }
    expect(new Set(hashes).size).toBe(3);
    expect(await pruneStage3Cache(cache)).toEqual([`${hashes[0]}.tar.xz`]);
    expect((await blobs()).sort()).toEqual([`${hashes[1]}.tar.xz`, `${hashes[2]}.tar.xz`].sort());
    // A build pinned to an old release keeps its own tarball.
    const old = await fetchVerifiedStage3(request({ stage3: timestamps[0] }));
    expect(await pruneStage3Cache(cache, 2, [old.sha512])).toEqual([]);
    expect(await blobs()).toContain(`${old.sha512}.tar.xz`);
  });
});
