// hnforge check-gentoo (pipeline/gentoo/check.ts): the generated configuration
// under a scratch root, and, when a portage source tree is at hand
// (HNFORGE_PORTAGE_SRC=<checkout of gentoo/portage>), real portage run against
// it and the synthetic repository. Without that variable the real-portage
// test is skipped (its title says so): nothing here stands in for portage.

import { describe, expect, it } from 'vitest';
import { mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkGentoo, syntheticRepoFiles, writeConfigRoot } from '../../pipeline/gentoo/check.ts';
import { resolveProfile } from '../../pipeline/profiles.ts';
import { REPO } from './fixtures.ts';

const PORTAGE = process.env.HNFORGE_PORTAGE_SRC;

describe('check-gentoo', () => {
  it('writes the generated configuration under a scratch root with its absolute paths moved there', async () => {
    const profile = await resolveProfile(join(REPO, 'profiles'), 'hn');
    const dir = await mkdtemp(join(tmpdir(), 'hnforge-check-'));
    try {
      await writeConfigRoot(join(dir, 'root'), profile, '/r/gentoo', '/r/overlay');
      const root = join(dir, 'root');
      expect(await readFile(join(root, 'etc/portage/make.conf'), 'utf8')).toContain(`source ${root}/etc/portage/hnforge-build.conf`);
      expect(await readFile(join(root, 'etc/portage/repos.conf/gentoo.conf'), 'utf8')).toMatch(/^location = \/r\/gentoo$/m);
      expect(await readFile(join(root, 'etc/portage/binrepos.conf/gentoobinhost.conf'), 'utf8')).toContain(`location = ${root}/var/cache/binhost/gentoobinhost`);
      expect(await readlink(join(root, 'etc/portage/make.profile'))).toBe('/r/gentoo/profiles/default/linux/amd64/23.0/systemd');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the synthetic repository carries the profile hn selects and one package per problem kind', () => {
    const files = Object.keys(syntheticRepoFiles('default/linux/amd64/23.0/systemd'));
    expect(files).toContain('profiles/default/linux/amd64/23.0/systemd/make.defaults');
    expect(files.filter((f) => f.endsWith('.ebuild'))).toHaveLength(8);
  });

  it.skipIf(!PORTAGE)(
    `[real portage${PORTAGE ? ` ${PORTAGE}` : ': skipped, set HNFORGE_PORTAGE_SRC to a gentoo/portage source tree'}] emerge --info reads the generated configuration; emerge --pretend reports keyword, licence, REQUIRED_USE, USE and blocker problems hnforge reads`,
    async () => {
      const profile = await resolveProfile(join(REPO, 'profiles'), 'hn');
      const r = await checkGentoo({ portage: PORTAGE, profile, repoDir: REPO, log: () => {} });
      expect(r.why).toEqual([]);
      expect(r.ok).toBe(true);
      expect(r.steps.find((s) => s.name === 'emerge --info')!.output).toMatch(/gentoobinhost\n\s+location: .*\/var\/cache\/binhost\/gentoobinhost/);
      expect(r.problems.map((p) => p.kind).sort()).toEqual(['blocker', 'keyword', 'license', 'required-use', 'use']);
    },
    300_000,
  );
});
