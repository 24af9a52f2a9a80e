// Keys do not depend on where the cache, the output or the repository clone
// are: two caches, two outputs and a copy of the repository give the same key
// for every stage of every real profile (dry runs; the network-bound compute
// stages (mirror, stage3, keys) are replaced by stand-ins that set what the real ones set).
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { portablePath } from '../../pipeline/portable-paths.ts';
import { resolveProfile } from '../../pipeline/profiles.ts';
import { build } from '../../pipeline/runner.ts';
import type { StageDef } from '../../pipeline/stage.ts';
import { stagesFor } from '../../pipeline/stages-table.ts';

const REPO = join(import.meta.dirname, '../..');
const PROFILES = ['hn-debian', 'test-min', 'hn'];

/** The real stage table, with the compute stages (mirror InRelease, stage3 index) answered locally. */
function offlineStages(base: 'debian' | 'gentoo'): StageDef[] {
  return stagesFor(base).map((s): StageDef => {
    if (s.name === 'debian-mirror') return { ...s, run: async () => ({ mirror: 'http://deb.example.org/debian', mirrorDate: 'Sat, 01 Nov 2025 09:00:00 UTC' }) };
    if (s.name === 'gentoo-stage3') {
      const sha512 = 'ab'.repeat(64);
      return {
        ...s,
        // As a real run: the verified tarball lies in this cache.
        run: async (ctx) => ({ gentooStage3: { url: 'https://gentoo.example.org/stage3.tar.xz', fingerprint: 'F'.repeat(40), sha512, path: join(ctx.cacheDir, 'gentoo/blobs', `${sha512}.tar.xz`) } }),
      };
    }
    if (s.name === 'gentoo-keys') {
      return { ...s, run: async () => ({ gentooKeys: { keys: [{ fingerprint: 'F'.repeat(40), role: 'release', expires: 'never', source: 'stand-in' }] } }) };
    }
    expect(s.kind, `${s.name} needs a stand-in in this test`).not.toBe('compute');
    return s;
  });
}

async function keys(profile: string, repoDir: string, cacheDir: string, outputDir: string): Promise<Record<string, string>> {
  const { base } = await resolveProfile(join(repoDir, 'profiles'), profile);
  const result = await build({ profile, repoDir, cacheDir, outputDir, stages: offlineStages(base), dryRun: true, progress: 'silent' });
  return Object.fromEntries(result.stages.filter((s) => s.key).map((s) => [s.name, s.key!]));
}

describe('cache keys are independent of where things are', () => {
  let work: string;
  let clone: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hnkeys-'));
    // A copy of the repository elsewhere (what a second checkout holds: no node_modules, no .git).
    clone = join(work, 'elsewhere/hnforge-clone');
    for (const entry of await readdir(REPO)) {
      if (entry !== 'node_modules' && entry !== '.git') await cp(join(REPO, entry), join(clone, entry), { recursive: true, verbatimSymlinks: true });
    }
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  for (const profile of PROFILES) {
    it(`${profile}: two caches, two outputs and a second clone give the same key for every stage`, async () => {
      const a = await keys(profile, REPO, join(work, 'cache-a'), join(work, 'out-a'));
      const b = await keys(profile, clone, join(work, 'shared/other-cache'), join(work, 'elsewhere/out-b'));
      expect(Object.keys(a).length).toBeGreaterThan(5);
      expect(b).toEqual(a);
    });
  }

  it('the keys still follow the content: a changed repository file changes them', async () => {
    const other = join(work, 'changed-clone');
    await cp(clone, other, { recursive: true, verbatimSymlinks: true });
    await writeFile(join(other, 'boot/hn-boot.sh'), `${await readFile(join(other, 'boot/hn-boot.sh'), 'utf8')}\n# changed\n`);
    const a = await keys('test-min', clone, join(work, 'cache-a'), join(work, 'out-a'));
    const b = await keys('test-min', other, join(work, 'cache-a'), join(work, 'out-a'));
    expect(b['boot-initramfs']).not.toBe(a['boot-initramfs']);
    expect(b['layout']).toBe(a['layout']);
  });

  it('portablePath: the innermost home, behind its placeholder; other paths as they are', () => {
    const homes = { repoDir: '/src/hnforge', cacheDir: '/src/hnforge/cache', buildDir: '/src/hnforge/cache/build/p', outputDir: '/out' };
    expect(portablePath(homes, '/src/hnforge/boot/hn-boot.sh')).toBe('<repo>/boot/hn-boot.sh');
    expect(portablePath(homes, '/src/hnforge/cache/apt/archives')).toBe('<cache>/apt/archives');
    expect(portablePath(homes, '/src/hnforge/cache/build/p/root')).toBe('<build>/root');
    expect(portablePath(homes, '/out')).toBe('<output>');
    expect(portablePath(homes, '/src/hnforge-other/x')).toBe('/src/hnforge-other/x');
    expect(portablePath(homes, '/etc/apt/trusted.gpg')).toBe('/etc/apt/trusted.gpg');
  });
});
