// Publishing end to end on the directory store: publish, verify, promote,
// prune and diff on small real images, with real zstd and Debian's gpgv as a
// node would run them; then every fault the issue lists: tampered files, a
// foreign or missing signature, a store that fails mid-publish, two
// publishes of the same version at once.

import { execFile } from 'node:child_process';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HnError } from '../../pipeline/errors.ts';
import { listVersions, promote, prune } from '../../pipeline/publish/channel-ops.ts';
import { readChannel } from '../../pipeline/publish/channel.ts';
import { diffManifests } from '../../pipeline/publish/diff.ts';
import { parseManifest } from '../../pipeline/publish/manifest.ts';
import { publish, type PublishOptions } from '../../pipeline/publish/publish.ts';
import { FileStore } from '../../pipeline/publish/store-file.ts';
import { versionFiles, type Store } from '../../pipeline/publish/store.ts';
import { verifyVersion } from '../../pipeline/publish/verify.ts';
import { outputFiles } from '../../pipeline/publish/output.ts';
import { fileIdentity } from '../../pipeline/report.ts';
import { failure } from './store-contract.ts';
import { makeImage, makeKeys, scratchDir, type Keys } from './publish-fixtures.ts';

const sh = promisify(execFile);
const ref = { profile: 'hn-test', channel: 'nightly' };
let tmp: { dir: string; cleanup: () => Promise<void> };
let keys: Keys;
let otherKeys: Keys;

beforeAll(async () => {
  tmp = await scratchDir('hnforge-publish-');
  keys = await makeKeys(join(tmp.dir, 'keys'));
  otherKeys = await makeKeys(join(tmp.dir, 'other-keys'), 'someone else');
});
afterAll(() => tmp.cleanup());

let n = 0;
/** A fresh store directory and a publish with the test key, overridable. */
function setup() {
  const root = join(tmp.dir, `store-${++n}`);
  const store = new FileStore(root);
  const run = (image: string, extra: Partial<PublishOptions> = {}) => publish({ image, store, channel: 'nightly', signingKey: keys.key, lockWaitMs: 2000, ...extra });
  const trust = async () => ({ keyring: await readFile(keys.keyring), allowUnsigned: false });
  return { root, store, run, trust, dir: (name: string) => join(tmp.dir, `img-${n}-${name}`) };
}

describe('publish to a directory store', () => {
  it('publishes a version that verifies with hnforge verify, gpgv and zstd -d (sparse, same sha256)', async () => {
    const { root, store, run, trust, dir } = setup();
    const { image } = await makeImage(dir('a'), { version: '20261202.1' });
    const result = await run(image);
    expect(result.alreadyPublished).toBe(false);
    expect(result.signedBy).toMatch(/^[0-9A-F]{40}$/);
    const channelDir = join(root, 'hn-test', 'nightly');
    expect((await readdir(channelDir)).sort()).toEqual(['SHA256SUMS', 'SHA256SUMS.gpg', ...Object.values(versionFiles('20261202.1'))].sort());

    const verified = await verifyVersion({ store, ref, trust: await trust() });
    expect(verified.version).toBe('20261202.1');
    expect(verified.image.checked).toBe(true);

    // What a node runs: gpgv with the binary keyring, then sha256sum -c and zstd -d.
    await sh('gpgv', ['--keyring', keys.keyring, join(channelDir, 'SHA256SUMS.gpg'), join(channelDir, 'SHA256SUMS')]);
    await sh('sha256sum', ['-c', '--strict', 'SHA256SUMS'], { cwd: channelDir });
    const restored = join(dir('a'), 'restored.img');
    await sh('zstd', ['-d', '-q', '-o', restored, join(channelDir, versionFiles('20261202.1').artifact)]);
    const [orig, back] = await Promise.all([stat(image), stat(restored)]);
    expect(back.size).toBe(orig.size);
    expect(back.blocks * 512).toBeLessThan(orig.size / 4); // sparse: the holes stayed holes
    const manifest = parseManifest(await readFile(join(channelDir, versionFiles('20261202.1').manifest)), 'manifest');
    expect((await sh('sha256sum', [restored])).stdout.split(' ')[0]).toBe(manifest.image.sha256);
    expect(manifest).toMatchObject({ version: '20261202.1', channel: 'nightly', profile: 'hn-test', gitRevision: 'abc123', image: { apparentBytes: orig.size } });
    expect(manifest.files[0]).toMatchObject({ path: '/etc/hostname' });
  });

  it('publishing the same image again changes nothing; another image under the same version is refused', async () => {
    const { root, run, dir } = setup();
    const a = await makeImage(dir('a'), { version: '20261202.1' });
    a.report.sha256 = undefined;
    await run(a.image);
    const sums = await readFile(join(root, 'hn-test', 'nightly', 'SHA256SUMS'), 'utf8');
    const b = await makeImage(dir('b'), { version: '20261202.1' });
    const e = await failure(run(b.image));
    expect(e.code).toBe('EPUBLISH_EXISTS');
    expect(e.message).toMatch(/already holds version 20261202\.1 with another image/);
    expect(await readFile(join(root, 'hn-test', 'nightly', 'SHA256SUMS'), 'utf8')).toBe(sums);
  });

  it('two publishes of one version at once: one wins, the other is refused with one line, the channel verifies', async () => {
    const { store, run, trust, dir } = setup();
    const a = await makeImage(dir('a'), { version: '20261202.1' });
    const b = await makeImage(dir('b'), { version: '20261202.1' });
    const results = await Promise.allSettled([run(a.image, { lockWaitMs: 60_000 }), run(b.image, { lockWaitMs: 60_000 })]);
    const failed = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason as HnError);
    expect(failed).toHaveLength(1);
    expect(failed[0]!.code).toBe('EPUBLISH_EXISTS');
    expect(failed[0]!.message).not.toMatch(/\n/);
    await verifyVersion({ store, ref, trust: await trust() });
  });

  it('a second publish waits for the lock, then gives up naming its holder', async () => {
    const { store, run, dir } = setup();
    const a = await makeImage(dir('a'), { version: '20261202.1' });
    const lock = await store.lock('hn-test', 0);
    try {
      const e = await failure(run(a.image, { lockWaitMs: 300 }));
      expect(e.code).toBe('EPUBLISH_BUSY');
      expect(e.message).toMatch(new RegExp(`pid ${process.pid}`));
    } finally {
      await lock.release();
    }
  });

  it('a store failing mid-upload leaves the channel on its previous version, and no scratch file', async () => {
    const { store, run, trust, dir } = setup();
    const first = await makeImage(dir('a'), { version: '20261202.1' });
    await run(first.image);
    const second = await makeImage(dir('b'), { version: '20261202.2' });
    const failing: Store = Object.assign(Object.create(store), {
      putFiles: async () => {
        throw new HnError('ESTORE_FULL', 'no space left (test)');
      },
    });
    expect((await failure(run(second.image, { store: failing }))).code).toBe('ESTORE_FULL');
    const channel = await readChannel(store, ref, await trust());
    expect(channel.versions).toEqual(['20261202.1']);
    expect((await readdir(dir('b'))).filter((f) => f.includes('partial'))).toEqual([]);
    // A store that loses a file after the upload (or a half-written one): caught by the read-back, channel unchanged.
    const lossy: Store = Object.assign(Object.create(store), {
      putFiles: async (...args: Parameters<Store['putFiles']>) => {
        await store.putFiles(...args);
        await writeFile(join(store.root, 'hn-test', 'nightly', versionFiles('20261202.2').artifact), 'truncated');
        return { linked: [] }; // what a store that copied says: the read-back must find the loss
      },
    });
    expect((await failure(run(second.image, { store: lossy }))).code).toBe('EVERIFY');
    expect((await readChannel(store, ref, await trust())).versions).toEqual(['20261202.1']);
  });

  it('a publish killed after its upload, before its index, leaves nothing that blocks the next publish of that version', async () => {
    const { store, run, trust, dir } = setup();
    const first = await makeImage(dir('a'), { version: '20261202.1' });
    const dying: Store = Object.assign(Object.create(store), {
      writeIndex: async () => {
        throw new Error('killed before the index was written (test)');
      },
    });
    await expect(run(first.image, { store: dying })).rejects.toThrow(/killed/);
    expect((await readChannel(store, ref, await trust())).exists).toBe(false);
    const second = await makeImage(dir('b'), { version: '20261202.1' });
    await run(second.image);
    await verifyVersion({ store, ref, trust: await trust() });
  });

  it("reuses the build's sha256 only while the image file is unchanged; an image written since is caught", async () => {
    const { store, run, trust, dir } = setup();
    const { image, report } = await makeImage(dir('a'), { version: '20261202.5' });
    report.sha256 = (await sh('sha256sum', [image])).stdout.split(' ')[0];
    report.imageIdentity = await fileIdentity(image);
    await writeFile(outputFiles(image).json, JSON.stringify(report));
    await run(image);
    await verifyVersion({ store, ref, trust: await trust() }); // decompressed: the reused sha256 is the image's

    const b = await makeImage(dir('b'), { version: '20261202.6' });
    b.report.sha256 = (await sh('sha256sum', [b.image])).stdout.split(' ')[0];
    b.report.imageIdentity = await fileIdentity(b.image);
    await writeFile(outputFiles(b.image).json, JSON.stringify(b.report));
    await sh('sh', ['-c', 'printf x | dd of="$1" bs=1 seek=4096 conv=notrunc status=none', 'sh', b.image]);
    const e = await failure(run(b.image));
    expect(e.code).toBe('EVERIFY');
    expect(e.message).toMatch(/changed since it was built/);
  });

  it('refuses to drop a signature: an unsigned publish into a signed channel', async () => {
    const { run, dir } = setup();
    await run((await makeImage(dir('a'), { version: '1' })).image);
    const e = await failure(run((await makeImage(dir('b'), { version: '2' })).image, { signingKey: undefined }));
    expect(e.code).toBe('EUNSIGNED');
  });
});

describe('hnforge verify finds what was altered', () => {
  async function published() {
    const s = setup();
    const { image } = await makeImage(s.dir('a'), { version: '20261202.1' });
    await s.run(image);
    return { ...s, channelDir: join(s.root, 'hn-test', 'nightly'), names: versionFiles('20261202.1') };
  }

  it('a tampered artifact (same size)', async () => {
    const { store, trust, channelDir, names } = await published();
    const path = join(channelDir, names.artifact);
    const bytes = await readFile(path);
    const middle = bytes.length >> 1;
    bytes[middle] = bytes[middle]! ^ 0xff;
    await writeFile(path, bytes);
    const e = await failure(verifyVersion({ store, ref, trust: await trust() }));
    expect(e.code).toBe('EVERIFY');
    expect(e.message).toMatch(/hn-root_20261202\.1\.img\.zst: sha256 [0-9a-f]{64}, but SHA256SUMS says/);
  });

  it('a tampered manifest', async () => {
    const { store, trust, channelDir, names } = await published();
    const path = join(channelDir, names.manifest);
    await writeFile(path, (await readFile(path, 'utf8')).replace('"hn-test"', '"hn-evil"'));
    expect((await failure(verifyVersion({ store, ref, trust: await trust() }))).code).toBe('EVERIFY');
  });

  it('a tampered SHA256SUMS (signature no longer matches, after one retry)', async () => {
    const { store, trust, channelDir } = await published();
    const path = join(channelDir, 'SHA256SUMS');
    await writeFile(path, (await readFile(path, 'utf8')).replace(/^[0-9a-f]/, (c) => (c === '0' ? '1' : '0')));
    const e = await failure(verifyVersion({ store, ref, trust: await trust() }));
    expect(e.code).toBe('ESIGN_BAD');
    // gpgv agrees.
    await expect(sh('gpgv', ['--keyring', keys.keyring, path + '.gpg', path])).rejects.toThrow();
  });

  it('a signature by another key', async () => {
    const { store, channelDir } = await published();
    const e = await failure(verifyVersion({ store, ref, trust: { keyring: await readFile(otherKeys.keyring), allowUnsigned: false } }));
    expect(e.code).toBe('ESIGN_UNKNOWN_KEY');
    await expect(sh('gpgv', ['--keyring', otherKeys.keyring, join(channelDir, 'SHA256SUMS.gpg'), join(channelDir, 'SHA256SUMS')])).rejects.toThrow();
  });

  it('an unsigned version is refused unless allowed', async () => {
    const s = setup();
    await s.run((await makeImage(s.dir('a'), { version: '3' })).image, { signingKey: undefined });
    expect((await failure(verifyVersion({ store: s.store, ref, trust: { allowUnsigned: false } }))).code).toBe('EUNSIGNED');
    expect((await verifyVersion({ store: s.store, ref, trust: { allowUnsigned: true } })).signedBy).toBeUndefined();
  });
});

describe('promote, prune, versions, diff', () => {
  it('promote lists the same digest in stable; prune keeps heads and what another channel lists', async () => {
    const { store, run, trust, dir, root } = setup();
    for (const v of ['20261201.1', '20261202.1', '20261202.2']) await run((await makeImage(dir(v), { version: v, packages: { busybox: v } })).image);
    const opts = { store, profile: 'hn-test', signingKey: keys.key, trust: await trust(), lockWaitMs: 1000 };
    const promoted = await promote({ ...opts, version: '20261201.1', to: 'stable' });
    expect(promoted).toMatchObject({ from: 'nightly', to: 'stable', alreadyThere: false });
    const nightly = await readChannel(store, ref, await trust());
    const stable = await readChannel(store, { profile: 'hn-test', channel: 'stable' }, await trust());
    const artifact = versionFiles('20261201.1').artifact;
    expect(stable.sums.get(artifact)).toBe(nightly.sums.get(artifact));
    expect((await promote({ ...opts, version: '20261201.1', to: 'stable' })).alreadyThere).toBe(true);
    expect((await failure(promote({ ...opts, version: '19990101.1', to: 'stable' }))).code).toBe('EPUBLISH_MISSING');

    const dry = await prune({ ...opts, keep: 1, dryRun: true });
    expect(dry.find((r) => r.channel === 'nightly')!.removed).toEqual(['20261202.1', '20261201.1']);
    expect((await readChannel(store, ref, await trust())).versions).toHaveLength(3);
    expect((await prune({ ...opts, keep: 2, olderThanDays: 1 })).every((r) => r.removed.length === 0)).toBe(true);
    const pruned = await prune({ ...opts, keep: 1 });
    expect(pruned.find((r) => r.channel === 'nightly')).toMatchObject({ kept: ['20261202.2'], removed: ['20261202.1', '20261201.1'] });
    expect(pruned.find((r) => r.channel === 'stable')).toMatchObject({ kept: ['20261201.1'], removed: [] });
    expect((await readdir(join(root, 'hn-test', 'nightly'))).filter((f) => f.includes('20261201.1'))).toEqual([]);
    await verifyVersion({ store, ref: { profile: 'hn-test', channel: 'stable' }, trust: await trust(), quick: true });
    await verifyVersion({ store, ref, trust: await trust() });
    expect((await failure(prune({ ...opts, keep: 0 }))).code).toBe('EUSAGE');

    const listing = await listVersions(store, await trust());
    expect(listing.map((c) => [c.channel, c.head, c.versions.length])).toEqual([['nightly', '20261202.2', 1], ['stable', '20261201.1', 1]]);
  });

  it('diff names packages added, removed, upgraded and files changed, and the report carries it', async () => {
    const { run, dir, root } = setup();
    await run((await makeImage(dir('1'), { version: '1', packages: { busybox: '1.35', gone: '1' } })).image);
    await run((await makeImage(dir('2'), { version: '2', packages: { busybox: '1.36', added: '2' }, extraFile: '/usr/bin/new' })).image);
    const read = async (v: string) => parseManifest(await readFile(join(root, 'hn-test', 'nightly', versionFiles(v).manifest)), v);
    const d = diffManifests(await read('1'), await read('2'));
    expect(d.packages).toEqual({ added: ['added'], removed: ['gone'], upgraded: [{ name: 'busybox', from: '1.35', to: '1.36' }], downgraded: [] });
    expect(d.files.added).toEqual(['/usr/bin/new']);
    const report = await readFile(join(root, 'hn-test', 'nightly', versionFiles('2').report), 'utf8');
    expect(report).toMatch(/changes from 1 to 2:\npackages: 1 added, 1 removed, 1 upgraded/);
    expect(report).toMatch(/busybox 1\.35 -> 1\.36/);
  });
});

describe('the publishing commands', () => {
  const hnforge = (args: string[], env: Record<string, string> = {}) =>
    execa(join(import.meta.dirname, '../../bin/hnforge'), args, { reject: false, env: { HNFORGE_STORE: '', HNFORGE_SIGNING_KEY: '', ...env }, timeout: 120_000 });

  it('publish, versions --json and verify from the command line; mistakes are one line', async () => {
    const { dir, root } = setup();
    const { image } = await makeImage(dir('cli'), { version: '20261202.7' });
    const url = `file://${root}`;
    const published = await hnforge(['publish', '--image', image, '--store', url, '--signing-key', join(keys.dir, 'signing-key.asc'), '--json']);
    expect(published.exitCode, published.stderr).toBe(0);
    expect(JSON.parse(published.stdout)).toMatchObject({ ok: true, version: '20261202.7', channel: 'nightly' });
    const listed = await hnforge(['versions', '--store', url, '--keyring', keys.keyring, '--json']);
    expect(JSON.parse(listed.stdout)[0]).toMatchObject({ profile: 'hn-test', channel: 'nightly', head: '20261202.7' });
    const verified = await hnforge(['verify', '--store', url, '--keyring', keys.keyring]);
    expect(verified.exitCode, verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/^verified hn-test\/nightly 20261202\.7: signed by [0-9A-F]{40}/);

    for (const [args, pattern] of [
      [['publish', '--image', image], /no store named: pass --store URL/],
      [['publish', '--image', join(root, 'nope.img'), '--store', url], /--image .*nope\.img: no such image file/],
      [['versions', '--store', 'ftp://x/y'], /unknown scheme/],
      [['verify', '19990101.1', '--store', url, '--keyring', keys.keyring], /version 19990101\.1 is not in channel hn-test\/nightly/],
      [['verify', '--store', url], /is signed but no keyring was given/],
      [['prune', '--keep', '0', '--store', url, '--allow-unsigned'], /keep at least 1 version/],
    ] as [string[], RegExp][]) {
      const r = await hnforge(args);
      expect(r.exitCode, args.join(' ')).not.toBe(0);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr, args.join(' ')).toMatch(pattern);
    }
  });
});
