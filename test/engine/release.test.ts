// The version through the engine, on its small real pipeline (sparse image,
// loop mount, a populate stage, the real release, file-list and seal stages):
// the default counts past the store and the published report, the same
// inputs get the same version again the same day and hit the cache to the
// end, and a new version reruns only the release stage and what follows it.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, type BuildOptions } from '../../pipeline/runner.ts';
import type { BuildReport } from '../../pipeline/report.ts';
import { ResourceStack } from '../../pipeline/seam/resources.ts';
import { attachLoop, mountOn } from '../../pipeline/seam/system.ts';
import { IMAGE_PATHS } from '../../pipeline/boot/contract.ts';
import { fileList } from '../../stages/file-list.ts';
import { release } from '../../stages/release.ts';
import { engineStages } from '../support/engine-stages.ts';
import { generateSigningKey } from '../../pipeline/publish/signing.ts';

const repoDir = join(import.meta.dirname, '../..');

describe.skipIf(process.getuid?.() !== 0)('[root] versions through the engine', () => {
  let work: string;
  let runs: string[];
  let opts: BuildOptions;
  const report = async () => JSON.parse(await readFile(join(work, 'out/hn-root.report.json'), 'utf8')) as BuildReport;
  /** /etc/hn-release and /etc/os-release of the published image. */
  async function inside(): Promise<{ hnRelease: string; osRelease: string }> {
    const stack = new ResourceStack();
    const mnt = join(work, 'mnt');
    await mkdir(mnt, { recursive: true });
    try {
      const loop = await attachLoop(stack, join(work, 'out/hn-root.img'));
      await mountOn(stack, loop.device, mnt, { options: ['ro', 'noload'] });
      return { hnRelease: await readFile(join(mnt, IMAGE_PATHS.hnRelease), 'utf8'), osRelease: await readFile(join(mnt, IMAGE_PATHS.osRelease), 'utf8') };
    } finally {
      const { failed } = await stack.unwind();
      expect(failed).toEqual([]);
    }
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hnrelease-engine-'));
    runs = [];
    // populate, configure, then the release stages before seal, as in the real table.
    const [create, mount, populate, , seal] = engineStages('none', runs);
    await mkdir(join(work, 'store/test-min/stable'), { recursive: true });
    await writeFile(join(work, 'store/test-min/stable/SHA256SUMS'), `${createHash('sha256').update('x').digest('hex')} *hn-root_20261202.3.img.zst\n`);
    opts = {
      profile: 'test-min', repoDir, cacheDir: join(work, 'cache'), outputDir: join(work, 'out'), progress: 'silent', sidecar: false,
      stages: [create!, mount!, populate!, release, fileList, seal!], store: `file://${join(work, 'store')}`, now: new Date('2026-12-02T12:00:00Z'),
    };
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('defaults to the next version after the store\'s, writes it into the image and the report with the file list', async () => {
    const result = await build(opts);
    expect(result.ok).toBe(true);
    expect(result.version).toEqual({ version: '20261202.4', how: 'next' });
    const r = await report();
    expect(r.version).toBe('20261202.4');
    expect(r.publishingKey).toBeUndefined();
    expect(r.files.find((f) => f.path === '/populated')).toMatchObject({ type: 'f', size: 4, sha256: createHash('sha256').update('yes\n').digest('hex') });
    expect(r.files.find((f) => f.path === IMAGE_PATHS.hnRelease)).toMatchObject({ type: 'f', mode: '0644' });
    const { hnRelease, osRelease } = await inside();
    expect(hnRelease).toContain('HN_VERSION="20261202.4"\nHN_PROFILE="test-min"\nHN_BASE="debian"\n');
    expect(osRelease).toBe('IMAGE_ID="test-min"\nIMAGE_VERSION="20261202.4"\n');
    expect(await readFile(join(work, 'out/hn-root.report.txt'), 'utf8')).toContain('version        20261202.4\n');
  });

  it('a rebuild of the same inputs the same day reuses the version and runs no stage', async () => {
    runs.length = 0;
    const result = await build({ ...opts, now: new Date('2026-12-02T23:00:00Z') });
    expect(result.version).toEqual({ version: '20261202.4', how: 'reused' });
    expect(result.stages.filter((s) => s.status !== 'cached').map((s) => s.name)).toEqual([]);
    expect(runs).toEqual([]);
    // The file list came back from the cache with the image.
    expect((await report()).files.some((f) => f.path === '/populated')).toBe(true);
  });

  it('--from rebuilds the image: a new version, never the one of the image it replaces', async () => {
    runs.length = 0;
    const result = await build({ ...opts, from: 'populate' });
    expect(result.version).toEqual({ version: '20261202.5', how: 'next' });
    expect(runs).toEqual(['populate']);
  });

  it('a signing key makes another image: a new version, not the one of the unsigned build', async () => {
    const key = await generateSigningKey({ name: 'engine release test' });
    const result = await build({ ...opts, signingKey: { armored: key.privateKey } });
    expect(result.version).toEqual({ version: '20261202.6', how: 'next' });
    expect(Object.fromEntries(result.stages.map((s) => [s.name, s.status]))).toMatchObject({ populate: 'restored', release: 'ran' });
    expect((await report()).publishingKey).toEqual({ path: IMAGE_PATHS.publishingKeyring, fingerprints: [key.fingerprint] });
    expect((await inside()).hnRelease).toContain(`HN_PUBLISHING_KEY="${key.fingerprint}"`);
    // The unsigned image of .5 is no longer the cached finished one: unsigned again is rebuilt, so a new version.
    const unsigned = await build(opts);
    expect(unsigned.version).toEqual({ version: '20261202.7', how: 'next' });
  });

  it('--version reruns the release stage and what follows it, restoring the checkpoint before it', async () => {
    runs.length = 0;
    const result = await build({ ...opts, version: '2.0-rc1' });
    expect(result.version).toEqual({ version: '2.0-rc1', how: 'explicit' });
    const status = Object.fromEntries(result.stages.map((s) => [s.name, s.status]));
    expect(status).toMatchObject({ populate: 'restored', release: 'ran', 'file-list': 'ran', seal: 'ran' });
    expect(runs).toEqual([]);
    expect((await inside()).osRelease).toBe('IMAGE_ID="test-min"\nIMAGE_VERSION="2.0-rc1"\n');
  });

  it('the next day the same inputs get the first version of that day; the report\'s version counts too', async () => {
    await writeFile(join(work, 'store/test-min/stable/SHA256SUMS'), `${createHash('sha256').update('x').digest('hex')} *hn-root_20261203.1.img.zst\n`);
    const report3 = await report();
    await writeFile(join(work, 'out/hn-root.report.json'), JSON.stringify({ ...report3, version: '20261203.5' }));
    const result = await build({ ...opts, now: new Date('2026-12-03T08:00:00Z') });
    expect(result.version).toEqual({ version: '20261203.6', how: 'next' });
  });

  it('an invalid --version is EVERSION before anything runs', async () => {
    runs.length = 0;
    await expect(build({ ...opts, version: 'a/b' })).rejects.toMatchObject({ code: 'EVERSION' });
    expect(runs).toEqual([]);
  });
});
