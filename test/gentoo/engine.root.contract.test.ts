// [contract][root] A whole Gentoo build through the engine and its stage table:
// the shared stages (sparse image, loop mount, chroot, layout, scrub, seal)
// and the Gentoo stages, a synthetic stage3 and repository
// snapshot from a local mirror signed by a throwaway key, and the emerge and
// genkernel stand-ins running inside the loop-mounted image.
// NOT verified here: real Gentoo packages, a real kernel or initramfs, that
// the image boots (the boot chain tests do that for images with real kernels).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readFile, readdir, readlink, rm, symlink, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { NODE_FILES } from '../../pipeline/node-files.ts';
import { build } from '../../pipeline/runner.ts';
import { ResourceStack } from '../../pipeline/seam/resources.ts';
import { attachLoop, mountOn } from '../../pipeline/seam/system.ts';
import { IS_ROOT, KV, REPO, makeTestKey, publishSnapshot, publishStage3, serveMirror, tempDir, type Mirror, type TestKey } from './fixtures.ts';

const PORTAGE_PROFILE = 'default/linux/amd64/23.0/systemd';

async function testRepo(dir: string, mirror: string, key: TestKey): Promise<string> {
  // The repository as the engine sees it, with a profile of its own.
  for (const d of ['boot', 'portage-overlay', 'pipeline']) await symlink(join(REPO, d), join(dir, d));
  await mkdir(join(dir, 'profiles'));
  const profile = {
    name: 'gentoo-contract',
    description: 'Gentoo contract test (synthetic stage3, stand-ins)',
    base: 'gentoo',
    image: { sizeGiB: 1, filesystem: 'ext4', label: 'hn-root', fileName: 'hn-root.img' },
    packages: [],
    layout: { hostname: 'hn-unconfigured', directories: ['/hostpart', '/boot/loader', '/warehouse'] },
    boot: { modules: ['loop'], hostpartFilesystems: ['ext4'] },
    gentoo: {
      variant: 'systemd', mirrors: [mirror], stage3: 'latest',
      releaseKeyFingerprint: key.fingerprint, keyring: key.publicKeyFile,
      portageProfile: PORTAGE_PROFILE,
      repository: { snapshot: '20260501', snapshotKeyFingerprint: key.fingerprint },
      binhost: { enabled: true, url: 'https://binhost.invalid/x86-64/', requireSignature: true },
      makeConf: { COMMON_FLAGS: '-O2 -pipe' }, buildOnlyMakeConf: { MAKEOPTS: '-j2' },
      use: {}, acceptKeywords: { 'net-fs/xtreemfs': ['~amd64'] }, licenses: {},
      packages: ['app-containers/lxc', 'net-fs/xtreemfs', 'sys-apps/hnforge-node', 'sys-kernel/genkernel'],
    },
  };
  await writeFile(join(dir, 'profiles/gentoo-contract.yaml'), stringify(profile));
  return dir;
}

describe.skipIf(!IS_ROOT)('[contract][root] Gentoo build through the engine, loop-mounted image, stand-ins in the chroot', () => {
  let key: TestKey;
  let work: string;
  let mirror: Mirror;

  beforeAll(async () => {
    key = await makeTestKey();
    work = await tempDir('hnforge-gentoo-engine-');
    const mirrorRoot = join(work, 'mirror');
    mirror = await serveMirror(mirrorRoot);
    await publishStage3(mirrorRoot, key);
    await publishSnapshot(mirrorRoot, key, '20260501', PORTAGE_PROFILE);
  });
  afterAll(async () => {
    await mirror?.close();
    for (const d of [work, key?.home]) if (d) await rm(d, { recursive: true, force: true });
  });

  it('dry run: resolves the stage3 from the signed index and prints every Gentoo command', async () => {
    const repo = await testRepo(await tempDir('hnforge-repo-'), mirror.url, key);
    try {
      const result = await build({ profile: 'gentoo-contract', repoDir: repo, cacheDir: join(work, 'dry-cache'), outputDir: join(work, 'dry-out'), dryRun: true, progress: 'silent' });
      expect(result.ok).toBe(true);
      const byName = Object.fromEntries(result.stages.map((s) => [s.name, s]));
      expect(byName['gentoo-stage3']?.status).toBe('ran');
      const plan = result.stages.flatMap((s) => s.plan ?? []).join('\n');
      expect(plan).toContain(`stage3 ${mirror.url}releases/amd64/autobuilds/20260503T164604Z/stage3-amd64-systemd-20260503T164604Z.tar.xz signed by ${key.fingerprint}`);
      expect(plan).toMatch(/genkernel .*--linuxrc=\/var\/tmp\/hnforge\/linuxrc/);
      expect(plan).toMatch(/emerge --ask=n .*@world app-containers\/lxc/);
      // Nothing was downloaded but the index.
      expect(mirror.requests.filter((r) => r.path.endsWith('.tar.xz'))).toEqual([]);
    } finally {
      await rm(repo, { recursive: true, force: true });
    }
  });

  it('builds hn-root.img: verified stage3, pinned repository, stand-ins run in the loop-mounted image, caches outside it, build-only settings scrubbed', async () => {
    const repo = await testRepo(await tempDir('hnforge-repo-'), mirror.url, key);
    const cache = join(work, 'cache');
    const out = join(work, 'out');
    try {
      const result = await build({ profile: 'gentoo-contract', repoDir: repo, cacheDir: cache, outputDir: out, progress: 'silent' });
      expect(result.ok, JSON.stringify(result.error)).toBe(true);
      expect(result.stages.filter((s) => s.status !== 'ran').map((s) => `${s.name}:${s.status}`)).toEqual([]);
      expect(result.image).toBe(join(out, 'hn-root.img'));
      // Nothing of this build is still mounted (other builds on the host may be: compare only ours).
      expect((await readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.includes(work) || l.includes(cache))).toEqual([]);

      // Look inside the published image.
      const stack = new ResourceStack();
      const mnt = join(work, 'mnt');
      await mkdir(mnt, { recursive: true });
      try {
        const loop = await attachLoop(stack, result.image!);
        await mountOn(stack, loop.device, mnt, { type: 'ext4', options: ['ro'] });
        const log = join(mnt, 'var/log/hnforge-standin');
        expect(await readlink(join(mnt, 'boot/kernel'))).toBe(`vmlinuz-${KV}`);
        expect(await readlink(join(mnt, 'boot/initramfs'))).toBe(`initramfs-${KV}.img`);
        expect(await readFile(join(mnt, 'boot/hn-boot-id'), 'utf8')).toMatch(new RegExp(`^${KV.replace(/\./g, '\\.')} [0-9a-f]{24}\n$`));
        expect((await readFile(join(log, 'emerge-0.args'), 'utf8')).trim().split(' ')).toEqual(expect.arrayContaining(['@world', 'net-fs/xtreemfs', 'sys-apps/hnforge-node']));
        expect(await readFile(join(log, 'linuxrc.used'), 'utf8')).toContain('. /lib/hn-boot.sh');
        expect(await readdir(join(mnt, 'var/db/pkg/net-fs'))).toEqual(['xtreemfs-1.0']);
        // The node package installed exactly what node-files.list names (stand-in emerge honouring the list),
        // with its modes; node-tools enabled the units.
        for (const f of NODE_FILES) {
          const st = await stat(join(mnt, f.target));
          expect(st.mode & 0o7777, f.target).toBe(f.mode);
          expect(await readFile(join(mnt, f.target)), f.target).toEqual(await readFile(join(REPO, f.source)));
        }
        for (const f of NODE_FILES.filter((x) => x.wantedBy)) {
          expect(await readlink(join(mnt, `etc/systemd/system/${f.wantedBy}.wants`, f.target.split('/').pop()!))).toBe(f.target);
        }
        expect(await readFile(join(mnt, 'var/db/repos/gentoo/profiles/repo_name'), 'utf8')).toBe('gentoo\n');
        // Build-only settings and caches are not in the published image.
        expect(await readFile(join(mnt, 'etc/portage/make.conf'), 'utf8')).not.toContain('hnforge-build.conf');
        await expect(stat(join(mnt, 'etc/portage/hnforge-build.conf'))).rejects.toThrow();
        await expect(stat(join(mnt, 'etc/portage/binrepos.conf/gentoobinhost.conf'))).rejects.toThrow();
        expect(await readdir(join(mnt, 'var/cache/distfiles'))).toEqual([]);
        expect(await readdir(join(mnt, 'var/db/repos/hnforge'))).toEqual([]);
        expect(await readFile(join(mnt, 'etc/machine-id'), 'utf8')).toBe('');
        expect(await readFile(join(mnt, 'etc/fstab'), 'utf8')).toContain('LABEL=hostpart /hostpart auto noatime 0 0');
        // The release stage ran for the Gentoo base too: the version inside matches the report's.
        const report = JSON.parse(await readFile(join(out, 'hn-root.report.json'), 'utf8')) as { version: string; sources: Record<string, string>; files: { path: string }[] };
        expect(report.version).toMatch(/^\d{8}\.1$/);
        expect(await readFile(join(mnt, 'etc/hn-release'), 'utf8')).toContain(`HN_VERSION="${report.version}"\nHN_PROFILE="gentoo-contract"\nHN_BASE="gentoo"\n`);
        expect(await readFile(join(mnt, 'etc/os-release'), 'utf8')).toContain(`IMAGE_ID="gentoo-contract"\nIMAGE_VERSION="${report.version}"\n`);
        expect(report.sources).toMatchObject({ 'gentoo.repository.snapshot': '20260501', 'gentoo.stage3.sha512': expect.stringMatching(/^[0-9a-f]{128}$/) });
        expect(report.files.some((f) => f.path === '/var/db/pkg/net-fs/xtreemfs-1.0')).toBe(true);
      } finally {
        const { failed } = await stack.unwind();
        expect(failed).toEqual([]);
      }
      // ... while what emerge fetched stayed in the host cache for the next build.
      expect(await readdir(join(cache, 'gentoo/distfiles'))).toContain('net-fs_xtreemfs-1.0.tar.gz');
      expect(result.stages.find((s) => s.name === 'gentoo-emerge')?.status).toBe('ran');

      // Second build: everything cached, the stage3 only re-verified.
      mirror.requests.length = 0;
      const again = await build({ profile: 'gentoo-contract', repoDir: repo, cacheDir: cache, outputDir: out, progress: 'silent' });
      expect(again.ok).toBe(true);
      expect(again.stages.filter((s) => s.kind !== 'compute').every((s) => s.status === 'cached')).toBe(true);
      expect(mirror.requests.map((r) => r.path)).toEqual(['/releases/amd64/autobuilds/latest-stage3-amd64-systemd.txt']);
    } finally {
      await rm(repo, { recursive: true, force: true });
    }
  });
});
