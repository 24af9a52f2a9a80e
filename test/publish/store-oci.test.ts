// The OCI store (oci://host[:port]/repository) against the store contract on
// Debian's docker-registry 2.8 (127.0.0.1, deletion enabled, storage in a temp
// dir, stopped by PID afterwards), plus what only a registry shows: the plain
// channel tag follows the head version, an upload that meets a cut connection
// or 5xx ends complete or as one ESTORE line with no tag, deletion by digest,
// the client's errors as the store's codes, the advisory lock tag.
// NOT verified here: registries other than distribution 2.8, hosted registries
// without the catalog API (profiles() then says so; only its message is tested
// through a fake), real token services, TLS.

import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OciClient, type OciClientOptions } from '../../pipeline/publish/oci.ts';
import { ARTIFACT_TYPE, LOCK_TAG, OciStore, openOciStore, type OciStoreOptions } from '../../pipeline/publish/store-oci.ts';
import { openStore } from '../../pipeline/publish/stores.ts';
import { formatSums } from '../../pipeline/publish/sums.ts';
import type { ChannelRef, Upload } from '../../pipeline/publish/store.ts';
import { bytesOf, describeStoreContract, failure, upload } from './store-contract.ts';
import { ensureDebianPackage, freePort, registryAvailable, startFaultProxy, startRegistry, type FaultProxy, type Registry } from './registry-fixtures.ts';

const MiB = 1024 * 1024;
/** Fast retries and lock rounds: the tests inject failures and contention on purpose. */
const quick: OciStoreOptions = { credentials: null, retries: 3, backoffMs: 20, chunkSize: 4 * MiB, lockSettleMs: 100, lockPollMs: 50, requestTimeoutMs: 30_000 };
const clientOpts: OciClientOptions = { credentials: null, retries: 1, backoffMs: 20 };
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const unique = (prefix: string) => `${prefix}/${randomBytes(4).toString('hex')}`;

describe('oci:// store URLs and names', () => {
  it('opens oci://host[:port]/repository and refuses tags and malformed URLs with ESTORE_URL', async () => {
    expect((await openStore('oci://127.0.0.1:5000/hn/images')).url).toBe('oci://127.0.0.1:5000/hn/images');
    expect((await openOciStore('oci://Registry.Example.org/hn')).url).toBe('oci://registry.example.org/hn');
    for (const bad of ['oci://127.0.0.1:5000/hn/images:latest', 'oci://host', 'oci://host/Upper', 'oci://ho st/x']) {
      const e = await failure(openStore(bad));
      expect(e.code, bad).toBe('ESTORE_URL');
      expect(e.message).not.toContain('\n');
      expect(e.message).toMatch(/^store oci:\/\/.*; (write oci:\/\/host\[:port\]\/repository, e\.g\. oci:\/\/registry\.example\.org\/hn\/images|drop ":latest".*)$/);
    }
    expect((await failure(openStore('oci://host/Upper'))).message).toBe(
      'store oci://host/Upper: "Upper" is not a repository name (lowercase, digits, . _ - and /); write oci://host[:port]/repository, e.g. oci://registry.example.org/hn/images',
    );
  });

  it('maps versions to tags one-to-one and refuses names the store uses itself', async () => {
    const store = (await openOciStore('oci://127.0.0.1:5000/hn')) as OciStore;
    expect(store.versionTag('20261202.1')).toBe('20261202.1');
    expect(store.versionTag('1.0+b1~rc2')).toBe('1.0_pb1_trc2');
    expect(() => store.versionTag('channel-x')).toThrow(expect.objectContaining({ code: 'EVERSION' }));
    expect(() => store.versionTag(LOCK_TAG)).toThrow(expect.objectContaining({ code: 'EVERSION' }));
    expect(() => store.versionTag('bad/version')).toThrow(expect.objectContaining({ code: 'EVERSION' }));
    expect(store.repositoryOf('test-min')).toBe('hn/test-min');
    // Valid profile names that are not repository components (a trailing "-", "..").
    expect(() => store.repositoryOf('a-')).toThrow(expect.objectContaining({ code: 'EPROFILE' }));
    expect(() => store.repositoryOf('a..b')).toThrow(expect.objectContaining({ code: 'EPROFILE' }));
  });

  it('says profiles cannot be listed when the registry refuses the catalog', async () => {
    // A registry like most hosted ones: everything but /v2/_catalog.
    const server = createServer((req, res) => {
      res.writeHead(req.url?.startsWith('/v2/_catalog') ? 404 : 200, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNSUPPORTED","message":"catalog disabled"}]}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const store = await openOciStore(`oci://127.0.0.1:${(server.address() as { port: number }).port}/hn`, quick);
      const e = await failure(store.profiles());
      expect(e.code).toBe('ESTORE');
      expect(e.message).toMatch(/does not list its repositories \(catalog API refused\).*name the profile explicitly$/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe.skipIf(!registryAvailable)('[root] OCI store against docker-registry 2.8', () => {
  let registry: Registry;
  let proxy: FaultProxy;
  let scratch: string;

  beforeAll(async () => {
    if (!(await ensureDebianPackage('/usr/bin/docker-registry', 'docker-registry'))) throw new Error('docker-registry could not be installed');
    scratch = await mkdtemp(join(tmpdir(), 'hnforge-store-oci-'));
    registry = await startRegistry({ deleteEnabled: true });
    proxy = await startFaultProxy(registry.port);
  }, 300_000);
  afterAll(async () => {
    await proxy?.close();
    await registry?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
    // The registry must be gone: a leftover would hold its port and temp dir.
    if (registry) expect(() => process.kill(registry.pid, 0)).toThrow();
  });
  beforeEach(() => proxy?.reset());

  describeStoreContract(
    'oci',
    async () => ({ store: await openOciStore(`${registry.oci}/${unique('contract')}`, quick), cleanup: async () => {} }),
    { sharedPayload: true },
  );

  /** A store on a repository of its own, and a plain client on one of its profiles. */
  async function fresh(base = registry.oci, over: OciStoreOptions = {}) {
    const repository = unique('hn');
    const store = (await openOciStore(`${base}/${repository}`, { ...quick, ...over })) as OciStore;
    const client = (profile: string) => new OciClient(`${registry.oci}/${repository}/${profile}`, clientOpts);
    return { store, client, repository };
  }

  async function publish(store: OciStore, ref: ChannelRef, version: string): Promise<Upload[]> {
    const files = [upload(`hn-root_${version}.img.zst`, randomBytes(2000)), upload(`hn-root_${version}.json`, Buffer.from(`{"version":"${version}"}\n`))];
    await store.putFiles(ref, version, files);
    return files;
  }

  const sumsOf = (files: Upload[]) => Buffer.from(formatSums(new Map(files.map((f) => [f.name, f.sha256]))));

  it('stores a version as an artifact manifest with titled layers, version and creation time', async () => {
    const { store, client } = await fresh();
    const files = await publish(store, { profile: 'p', channel: 'nightly' }, '20261202.1');
    const { manifest } = await client('p').getManifest('20261202.1');
    expect(manifest.artifactType).toBe(ARTIFACT_TYPE.root);
    expect(manifest.config.mediaType).toBe('application/vnd.oci.empty.v1+json');
    expect(manifest.annotations?.['org.opencontainers.image.version']).toBe('20261202.1');
    expect(Date.parse(manifest.annotations!['org.opencontainers.image.created']!)).toBeGreaterThan(Date.now() - 60_000);
    expect(manifest.layers.map((l) => [l.annotations?.['org.opencontainers.image.title'], l.digest, l.mediaType])).toEqual([
      [files[0]!.name, `sha256:${files[0]!.sha256}`, 'application/zstd'],
      [files[1]!.name, `sha256:${files[1]!.sha256}`, 'application/json'],
    ]);
    // Adding a file later keeps the others and the creation time.
    const report = upload('hn-root_20261202.1.report.txt', Buffer.from('report\n'));
    await store.putFiles({ profile: 'p', channel: 'nightly' }, '20261202.1', [files[0]!, report]);
    const after = (await client('p').getManifest('20261202.1')).manifest;
    expect(after.layers.map((l) => l.annotations?.['org.opencontainers.image.title'])).toEqual([files[0]!.name, files[1]!.name, report.name]);
    expect(after.annotations).toEqual(manifest.annotations);
  });

  it('moves the channel tag to the head version listed in SHA256SUMS (numeric-aware) with the index', async () => {
    const { store, client } = await fresh();
    const nightly = { profile: 'p', channel: 'nightly' };
    const all: Upload[] = [];
    for (const v of ['20261202.9', '20261202.10', '20261202.1']) all.push(...(await publish(store, nightly, v)));
    const oci = client('p');
    await store.writeIndex(nightly, sumsOf(all), Buffer.from('sig'));
    expect((await oci.getManifest('nightly')).digest).toBe((await oci.getManifest('20261202.10')).digest);
    const index = await oci.getManifest('channel-nightly');
    expect(index.manifest.artifactType).toBe(ARTIFACT_TYPE.channel);
    expect(index.manifest.layers.map((l) => l.annotations?.['org.opencontainers.image.title'])).toEqual(['SHA256SUMS', 'SHA256SUMS.gpg']);

    // Pruning the head moves the tag back to the newest one left.
    const rest = all.filter((f) => !f.name.includes('20261202.10'));
    await store.writeIndex(nightly, sumsOf(rest), undefined);
    expect((await oci.getManifest('nightly')).digest).toBe((await oci.getManifest('20261202.9')).digest);

    // An index whose head the registry lacks is refused whole: neither tag moves.
    const ghost = upload('hn-root_20261203.1.json', Buffer.from('{}'));
    const e = await failure(store.writeIndex(nightly, sumsOf([...rest, ghost]), undefined));
    expect(e.code).toBe('EPUBLISH_MISSING');
    expect(e.message).toContain('lists version 20261203.1');
    expect(Buffer.from((await store.readIndex(nightly)).sums!).toString()).toBe(sumsOf(rest).toString());
    expect((await oci.getManifest('nightly')).digest).toBe((await oci.getManifest('20261202.9')).digest);

    // A version named like the channel would be moved by it: refused both ways round.
    expect((await failure(store.putFiles(nightly, 'nightly', [ghost]))).code).toBe('EVERSION');
    await publish(store, nightly, 'beta');
    expect((await failure(store.writeIndex({ profile: 'p', channel: 'beta' }, sumsOf(rest), undefined))).code).toBe('EPUBLISH_EXISTS');
    // Channel names that are the store's own tags are refused before anything is written.
    for (const channel of [LOCK_TAG, 'channel-x']) {
      expect((await failure(store.writeIndex({ profile: 'p', channel }, sumsOf(rest), undefined))).code).toBe('EUSAGE');
    }
    expect(await store.channels('p')).toEqual(['nightly']);
  });

  it('skopeo fetches the head version by the plain channel tag', async (ctx) => {
    if (!(await ensureDebianPackage('/usr/bin/skopeo', 'skopeo'))) {
      ctx.skip(); // skopeo (Debian) is the plain OCI tool a user would point at the tag
      return;
    }
    const { store, repository } = await fresh();
    const nightly = { profile: 'p', channel: 'nightly' };
    const old = await publish(store, nightly, '1');
    const head = await publish(store, nightly, '2');
    await store.writeIndex(nightly, sumsOf([...old, ...head]), undefined);
    const out = join(scratch, 'skopeo-dir');
    await promisify(execFile)('skopeo', ['copy', '--src-tls-verify=false', `docker://127.0.0.1:${registry.port}/${repository}/p:nightly`, `dir:${out}`], { timeout: 60_000 });
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as { annotations?: Record<string, string> };
    expect(manifest.annotations?.['org.opencontainers.image.version']).toBe('2');
    // skopeo's dir: layout names each blob by its digest's hex.
    for (const f of head) expect(sha(await readFile(join(out, f.sha256)))).toBe(f.sha256);
  }, 300_000);

  describe('uploads that meet a cut connection or 5xx', () => {
    let bigPath: string;
    let big: Upload;
    beforeAll(async () => {
      const bytes = randomBytes(5 * MiB + 7); // six 1 MiB chunks
      bigPath = join(scratch, 'big.img.zst');
      await writeFile(bigPath, bytes);
      big = { name: 'hn-root_7.img.zst', sha256: sha(bytes), size: bytes.length, source: { path: bigPath } };
    });

    it('a cut PATCH and a 500 mid-upload still give the complete version', async () => {
      const { store, client } = await fresh(proxy.oci, { chunkSize: MiB });
      proxy.fault = (r, i) =>
        r.method === 'PATCH' && i === 1 ? { kind: 'cut-midway', forwardHalf: true } : r.method === 'PATCH' && i === 3 ? { kind: 'status', status: 500 } : undefined;
      await store.putFiles({ profile: 'p', channel: 'nightly' }, '7', [big]);
      expect(proxy.requests.filter((r) => r.method === 'PATCH').length).toBeGreaterThan(6);
      const layer = (await client('p').getManifest('7')).manifest.layers[0]!;
      expect(layer).toMatchObject({ digest: `sha256:${big.sha256}`, size: big.size });
      expect(sha(await bytesOf(await store.readFile({ profile: 'p', channel: 'nightly' }, big)))).toBe(big.sha256);
    });

    it('a registry that keeps failing mid-upload is one ESTORE line, and no tag names the version', async () => {
      const { store, client } = await fresh(proxy.oci, { chunkSize: MiB, retries: 2 });
      proxy.fault = (r, i) => (r.method === 'PATCH' && i >= 2 ? { kind: 'status', status: 503 } : undefined);
      const e = await failure(store.putFiles({ profile: 'p', channel: 'nightly' }, '7', [big]));
      expect(e.code).toBe('ESTORE');
      expect(e.message).not.toContain('\n');
      expect(e.message).toMatch(new RegExp(`^registry 127\\.0\\.0\\.1:${proxy.oci.split(':').pop()}: upload of .*big\\.img\\.zst in hn/[0-9a-f]+/p: still failing after 3 attempts \\(last: HTTP 503 .*\\); check that`));
      expect(await client('p').listTags()).toEqual([]);
      expect((await failure(store.readFile({ profile: 'p', channel: 'nightly' }, big))).code).toBe('EPUBLISH_MISSING');
    });
  });

  it('removeFiles deletes the version manifest by digest only with lastReference; part of a version moves the tag', async () => {
    const { store, client } = await fresh();
    const nightly = { profile: 'p', channel: 'nightly' };
    const files = await publish(store, nightly, '3');
    const oci = client('p');
    const { digest } = await oci.getManifest('3');
    await store.removeFiles(nightly, '3', files, false);
    expect((await oci.getManifest(digest)).digest).toBe(digest);

    await store.removeFiles(nightly, '3', [files[1]!], true);
    const partial = await oci.getManifest('3');
    expect(partial.manifest.layers.map((l) => l.annotations?.['org.opencontainers.image.title'])).toEqual([files[0]!.name]);
    expect((await failure(oci.getManifest(digest))).code).toBe('EOCI_NOT_FOUND');

    await store.removeFiles(nightly, '3', files, true);
    expect((await failure(oci.getManifest(partial.digest))).code).toBe('EOCI_NOT_FOUND');
    expect(await oci.listTags()).toEqual([]);
    await store.removeFiles(nightly, '3', files, true); // absent is fine
  });

  it('a missing blob behind a manifest is EPUBLISH_MISSING; an altered, cut-off or stalled blob is one ESTORE line, not bytes', async () => {
    const { store, repository } = await fresh(proxy.oci);
    const nightly = { profile: 'p', channel: 'nightly' };
    const [img] = await publish(store, nightly, '4');
    proxy.fault = (r) => (r.method === 'GET' && r.path.includes('/blobs/') ? { kind: 'status', status: 404 } : undefined);
    expect((await failure(store.readFile(nightly, img!))).code).toBe('EPUBLISH_MISSING');
    proxy.reset();
    // A proxy that rewrites one byte of a blob, or cuts its connection half-way through it.
    let mode: 'alter' | 'cut' | 'hang' = 'alter';
    const server = createServer(async (req, res) => {
      const up = await fetch(`http://127.0.0.1:${registry.port}${req.url}`, { headers: { accept: String(req.headers.accept ?? '') } });
      const body = Buffer.from(await up.arrayBuffer());
      res.writeHead(up.status, Object.fromEntries([...up.headers].filter(([k]) => k !== 'content-encoding' && k !== 'transfer-encoding')));
      if (!req.url?.includes('/blobs/')) return res.end(body);
      if (mode === 'alter') {
        body[0] = body[0]! ^ 1;
        return res.end(body);
      }
      // 'hang': a registry that stops sending without closing the connection.
      res.write(body.subarray(0, 1000), () => (mode === 'cut' ? setTimeout(() => res.destroy(), 50) : undefined));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const altered = await openOciStore(`oci://127.0.0.1:${(server.address() as { port: number }).port}/${repository}`, quick);
      const e = await failure(bytesOf(await altered.readFile(nightly, img!)));
      expect(e.code).toBe('ESTORE');
      expect(e.message).toMatch(/got 2000 bytes with sha256:[0-9a-f]+, the manifest says 2000 bytes with sha256:/);
      mode = 'cut';
      const cut = await failure(bytesOf(await altered.readFile(nightly, img!)));
      expect(cut.code).toBe('ESTORE');
      expect(cut.message).toMatch(/: reading p\/hn-root_4\.img\.zst: the download broke off after 1000 bytes \(.*\); rerun$/);
      expect(cut.message).not.toContain('\n');
      mode = 'hang';
      const stalled = await openOciStore(altered.url, { ...quick, readIdleMs: 300 });
      const hung = await failure(bytesOf(await stalled.readFile(nightly, img!)));
      expect(hung.code).toBe('ESTORE');
      expect(hung.message).toMatch(/: reading p\/hn-root_4\.img\.zst: no data for 0\.3 s; check the network and the registry, then rerun$/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('turns refused credentials into ESTORE_DENIED, 413 into ESTORE_FULL, a dead registry into ESTORE', async () => {
    const bearer = await startFaultProxy(registry.port, { bearer: { user: 'ci', password: 'right' } });
    try {
      const { store } = await fresh(bearer.oci, { credentials: { username: 'ci', password: 'wrong' } });
      const e = await failure(store.channels('p'));
      expect(e.code).toBe('ESTORE_DENIED');
      expect(e.message).toMatch(/token service refused the credentials: HTTP 401.*; log in with `docker login 127\.0\.0\.1:\d+`/);
    } finally {
      await bearer.close();
    }

    const { store } = await fresh(proxy.oci);
    proxy.fault = (r) => (r.method === 'PUT' && r.path.includes('/blobs/') ? { kind: 'status', status: 413 } : undefined);
    const full = await failure(store.putFiles({ profile: 'p', channel: 'nightly' }, '5', [upload('hn-root_5.json', Buffer.from('{"version":"5"}'))]));
    expect(full.code).toBe('ESTORE_FULL');
    expect(full.message).toMatch(/HTTP 413.*no space or quota left/);
    expect(full.message).not.toContain('\n');

    const port = await freePort();
    const dead = await openOciStore(`oci://127.0.0.1:${port}/hn`, { ...quick, retries: 1 });
    const down = await failure(dead.readIndex({ profile: 'p', channel: 'nightly' }));
    expect(down.code).toBe('ESTORE');
    expect(down.message).toBe(`registry 127.0.0.1:${port}: GET manifest channel-nightly in hn/p: still failing after 2 attempts (last: ECONNREFUSED); check that http://127.0.0.1:${port} is up and its log, then rerun`);
  });

  it('takes over a lock whose holder died on this host or is older than the stale limit, not a live one elsewhere', async () => {
    const { store, client } = await fresh();
    const oci = client('p');
    const dead = await promisify(execFile)('sh', ['-c', 'echo $$']);
    const plant = async (holder: object) => {
      await oci.pushBlob({ bytes: Buffer.from('{}') });
      await oci.putManifest(LOCK_TAG, {
        schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: ARTIFACT_TYPE.lock,
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: `sha256:${sha(Buffer.from('{}'))}`, size: 2 },
        layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: `sha256:${sha(Buffer.from('{}'))}`, size: 2 }],
        annotations: { 'org.hnforge.lock': JSON.stringify(holder) },
      });
    };
    await plant({ host: hostname(), pid: Number(dead.stdout), since: new Date().toISOString(), token: 'dead' });
    await (await store.lock('p', 0)).release();

    await plant({ host: 'elsewhere', pid: 1, since: new Date(Date.now() - 7 * 3600_000).toISOString(), token: 'old' });
    await (await store.lock('p', 0)).release();

    await plant({ host: 'elsewhere', pid: 1, since: '2026-12-02T10:00:00.000Z', token: 'live' });
    const fresh2 = (await openOciStore(store.url, { ...quick, staleLockMs: 1000 * 3600_000 })) as OciStore;
    const e = await failure(fresh2.lock('p', 100));
    expect(e.code).toBe('EPUBLISH_BUSY');
    expect(e.message).toContain('(pid 1 on elsewhere since 2026-12-02T10:00:00.000Z)');
    expect(e.message).toContain(`delete the manifest tagged ${LOCK_TAG}`);
  });

  it('of two lockers racing for a free lock, the read-back lets exactly one win', async () => {
    const { store } = await fresh();
    const other = await openOciStore(store.url, quick);
    const results = await Promise.allSettled([store.lock('p', 0), other.lock('p', 0)]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost.map((r) => (r.reason as { code?: string }).code)).toEqual(['EPUBLISH_BUSY']);
    await (won[0] as PromiseFulfilledResult<{ release(): Promise<void> }>).value.release();
  });

  it('releases the lock with a marker where the registry has deletion disabled; prune there says how to enable it', async () => {
    const keeping = await startRegistry({ deleteEnabled: false });
    try {
      const store = await openOciStore(`${keeping.oci}/${unique('hn')}`, quick);
      const first = await store.lock('p', 0);
      expect((await failure(store.lock('p', 0))).code).toBe('EPUBLISH_BUSY');
      await first.release();
      await (await store.lock('p', 0)).release();
      // Pruning the last reference needs deletion: one ESTORE line saying how to enable it.
      const files = [upload('hn-root_1.json', Buffer.from('{}\n'))];
      await store.putFiles({ profile: 'p', channel: 'nightly' }, '1', files);
      const e = await failure(store.removeFiles({ profile: 'p', channel: 'nightly' }, '1', files, true));
      expect(e.code).toBe('ESTORE');
      expect(e.message).toMatch(/DELETE manifest sha256:[0-9a-f]+ in hn\/[0-9a-f]+\/p: HTTP 405 UNSUPPORTED.*; enable deletion in the registry \(docker-registry: storage\.delete\.enabled: true\)$/);
    } finally {
      await keeping.stop();
    }
    expect(() => process.kill(keeping.pid, 0)).toThrow();
  });

  it('lists only profiles under its repository that have a channel', async () => {
    const { store } = await fresh();
    await publish(store, { profile: 'beta', channel: 'nightly' }, '1'); // a version, no channel yet
    const alpha = await publish(store, { profile: 'alpha', channel: 'nightly' }, '1');
    await store.writeIndex({ profile: 'alpha', channel: 'nightly' }, sumsOf(alpha), undefined);
    await store.writeIndex({ profile: 'alpha', channel: 'stable' }, sumsOf(alpha), undefined);
    expect(await store.profiles()).toEqual(['alpha']);
    expect(await store.channels('alpha')).toEqual(['nightly', 'stable']);
  });
});

if (!registryAvailable) {
  describe('OCI store against docker-registry', () => {
    it.skip('skipped: /usr/bin/docker-registry is missing and installing it needs root (apt-get install docker-registry)', () => {});
  });
}
