// [contract][root] The Gentoo stages in order, for real, on a synthetic stage3
// served by a local mirror: fetch + verify, scan + unpack, pinned repository
// snapshot + portage configuration, the lead's chroot-enter, cache binds,
// emerge and genkernel stand-ins run inside the chroot, unbind, Gentoo scrub,
// chroot-leave. The image root is a plain directory here, not a loop-mounted
// image (the engine's image stages are tested on their own).
// NOT verified here: real emerge/genkernel behaviour, Gentoo's real stage3
// contents, the binhost, a kernel that boots; see README "Gentoo: what is
// verified where".

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lstat, mkdir, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { buildPaths } from '../../pipeline/plan.ts';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import type { BuildContext } from '../../pipeline/context.ts';
import { HnError } from '../../pipeline/errors.ts';
import { profileSchema, type ResolvedProfile } from '../../pipeline/profile-schema.ts';
import { ResourceStack } from '../../pipeline/seam/resources.ts';
import type { StageDef } from '../../pipeline/stage.ts';
import { asStage, openStageIO } from '../../pipeline/stage-io.ts';
import { chrootEnter, chrootLeave } from '../../stages/chroot.ts';
import { gentooBinds, gentooUnbind } from '../../stages/gentoo-binds.ts';
import { gentooEmerge } from '../../stages/gentoo-emerge.ts';
import { gentooKernel } from '../../stages/gentoo-kernel.ts';
import { gentooPortage } from '../../stages/gentoo-portage.ts';
import { gentooScrub } from '../../stages/gentoo-scrub.ts';
import { gentooStage3 } from '../../stages/gentoo-stage3.ts';
import { gentooUnpack } from '../../stages/gentoo-unpack.ts';
import { HOOK_BEGIN, LINUXRC_ANCHOR } from '../../pipeline/gentoo/kernel.ts';
import { IS_ROOT, KV, REPO, makeTestKey, readXattr, publishSnapshot, publishStage3, serveMirror, stage3Entries, tempDir, type Mirror, type TestKey } from './fixtures.ts';

const PORTAGE_PROFILE = 'default/linux/amd64/23.0/systemd';
const SNAPSHOT = '20260501';

function testProfile(mirror: string, key: TestKey, extraPackages: string[] = []): ResolvedProfile {
  return profileSchema.parse({
    name: 'gentoo-contract',
    description: 'contract test profile',
    base: 'gentoo',
    image: { sizeGiB: 2, filesystem: 'ext4', label: 'hn-root', fileName: 'hn-root.img' },
    packages: ['net-misc/openssh'],
    layout: { hostname: 'hn-unconfigured', directories: ['/hostpart'] },
    boot: { modules: ['loop'], hostpartFilesystems: ['btrfs', 'ext4'] },
    gentoo: {
      variant: 'systemd',
      mirrors: [mirror],
      stage3: 'latest',
      releaseKeyFingerprint: key.fingerprint,
      keyring: key.publicKeyFile,
      portageProfile: PORTAGE_PROFILE,
      repository: { snapshot: SNAPSHOT, snapshotKeyFingerprint: key.fingerprint },
      binhost: { enabled: true, url: 'https://binhost.invalid/releases/amd64/binpackages/23.0/x86-64/', requireSignature: true },
      makeConf: { COMMON_FLAGS: '-O2 -pipe', CFLAGS: '${COMMON_FLAGS}' },
      buildOnlyMakeConf: { MAKEOPTS: '-j2' },
      use: { 'app-emulation/libvirt': ['qemu', 'lxc', 'virt-network'] },
      acceptKeywords: { 'app-containers/docker': ['~amd64'] },
      licenses: {},
      packages: ['app-containers/lxc', 'app-emulation/qemu', 'app-containers/docker', 'sys-kernel/genkernel', ...extraPackages],
    },
  });
}

interface Harness {
  ctx: BuildContext;
  progress: string[];
  run(stage: StageDef): Promise<void>;
}

async function harness(profile: ResolvedProfile, base: string): Promise<Harness> {
  const paths = buildPaths(profile, { repoDir: REPO, cacheDir: join(base, 'cache'), outputDir: join(base, 'out') });
  const buildDir = paths.build;
  const root = paths.root;
  await mkdir(paths.logs, { recursive: true });
  await mkdir(root, { recursive: true });
  const ctx: BuildContext = {
    profile, paths, repoDir: REPO, buildDir, cacheDir: paths.cache, outputDir: paths.output,
    stack: new ResourceStack(), dryRun: false, root,
  };
  const progress: string[] = [];
  const abort = new AbortController();
  return {
    ctx,
    progress,
    async run(stage) {
      const io = openStageIO(join(buildDir, 'logs', `${stage.name}.log`), abort.signal, (t) => progress.push(t), stage);
      try {
        // As the runner does: every command the stage starts must be one it declared.
        Object.assign(ctx, (await asStage(stage, () => stage.run(ctx, io))) ?? {});
      } finally {
        await io.close();
      }
    },
  };
}

const mountsUnder = async (dir: string) => (await readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.split(' ')[1]?.startsWith(dir));

describe.skipIf(!IS_ROOT)('[contract][root] Gentoo stages end to end on a synthetic stage3 (stand-ins for emerge and genkernel)', () => {
  let key: TestKey;
  let mirrorRoot: string;
  let mirror: Mirror;
  const dirs: string[] = [];

  beforeAll(async () => {
    key = await makeTestKey();
    mirrorRoot = await tempDir('hnforge-mirror-');
    mirror = await serveMirror(mirrorRoot);
    await publishSnapshot(mirrorRoot, key, SNAPSHOT, PORTAGE_PROFILE);
  });
  afterAll(async () => {
    await mirror?.close();
    for (const d of [mirrorRoot, key?.home, ...dirs]) if (d) await rm(d, { recursive: true, force: true });
  });

  it('fetches, verifies, unpacks, configures, runs the stand-ins in the chroot and scrubs', async () => {
    await publishStage3(mirrorRoot, key);
    const base = await tempDir('hnforge-gentoo-e2e-');
    dirs.push(base);
    const h = await harness(testProfile(mirror.url, key), base);
    const root = h.ctx.root!;
    try {
      await h.run(gentooStage3);
      expect(h.ctx.gentooStage3?.sha512).toMatch(/^[0-9a-f]{128}$/);

      await h.run(gentooUnpack);
      // Owners, modes, hard links, device nodes, xattrs preserved; symlinks as stored.
      expect((await stat(join(root, 'var/lib/portage/owned-by-250'))).uid).toBe(250);
      expect((await stat(join(root, 'usr/bin/suid-standin'))).mode & 0o7777).toBe(0o4755);
      expect((await stat(join(root, 'usr/bin/hardlinked'))).ino).toBe((await stat(join(root, 'usr/bin/suid-standin'))).ino);
      expect((await lstat(join(root, 'dev/null'))).isCharacterDevice()).toBe(true);
      expect(await readlink(join(root, 'etc/localtime'))).toBe('/usr/share/zoneinfo/UTC');
      expect(await readXattr(root, 'usr/bin/with-xattr', 'user.hnforge')).toBe('kept');
      expect(await readdir(join(h.ctx.buildDir, 'gentoo'))).not.toContain('stage3.tar');

      await h.run(gentooPortage);
      expect(await readFile(join(root, 'var/db/repos/gentoo/profiles/repo_name'), 'utf8')).toBe('gentoo\n');
      expect(await readlink(join(root, 'etc/portage/make.profile'))).toBe(`../../var/db/repos/gentoo/profiles/${PORTAGE_PROFILE}`);
      expect(await readFile(join(root, 'etc/portage/binrepos.conf/gentoobinhost.conf'), 'utf8')).toContain('sync-uri = https://binhost.invalid/');

      await h.run(chrootEnter);
      await h.run(gentooBinds);
      // The overlay is bound read-only: nothing in the chroot can change it.
      await expect(writeFile(join(root, 'var/db/repos/hnforge/new-file'), 'x')).rejects.toThrow(/EROFS|read-only/);
      await h.run(gentooEmerge);
      const log = join(root, 'var/log/hnforge-standin');
      expect(await readFile(join(log, 'getuto.args'), 'utf8')).toBe('\n');
      expect((await readFile(join(log, 'pretend.args'), 'utf8')).trim().split(' ')).toEqual(expect.arrayContaining(['--pretend', '@world', 'app-containers/lxc', 'net-misc/openssh']));
      const args = (await readFile(join(log, 'emerge-0.args'), 'utf8')).trim().split(' ');
      expect(args).toEqual(expect.arrayContaining(['--ask=n', '--update', '--deep', '--newuse', '@world', 'app-containers/lxc', 'net-misc/openssh']));
      const env = await readFile(join(log, 'emerge-0.env'), 'utf8');
      expect(env).toContain('PATH=/usr/sbin:/usr/bin:/sbin:/bin');
      expect(env).not.toMatch(/^GNUPGHOME=/m);
      expect(h.progress).toContain('package 1 of 5: app-containers/lxc-1.0');
      expect(h.progress).toContain('package 5 of 5: net-misc/openssh-1.0');
      expect(h.ctx.gentooEmerged).toEqual(expect.arrayContaining(['app-containers/lxc-1.0', 'sys-apps/baselayout-2.17']));

      await h.run(gentooKernel);
      const gk = (await readFile(join(log, 'genkernel.args'), 'utf8')).trim().split(' ');
      expect(gk).toEqual(expect.arrayContaining([
        '--linuxrc=/var/tmp/hnforge/linuxrc', '--initramfs-overlay=/var/tmp/hnforge/initramfs-overlay',
        '--kernel-config=/var/tmp/hnforge/kernel.config', '--btrfs', '--e2fsprogs', '--makeopts=-j2', 'all',
      ]));
      const used = (await readFile(join(log, 'linuxrc.used'), 'utf8')).split('\n');
      expect(used.indexOf(HOOK_BEGIN)).toBeGreaterThan(0);
      expect(used.indexOf(LINUXRC_ANCHOR)).toBeGreaterThan(used.indexOf(HOOK_BEGIN));
      expect(await readFile(join(root, 'var/tmp/hnforge/initramfs-overlay/lib/hn-boot.sh'), 'utf8')).toBe(await readFile(join(REPO, 'boot/hn-boot.sh'), 'utf8'));
      expect(await readFile(join(root, 'var/tmp/hnforge/initramfs-overlay/lib/hn-shutdown'), 'utf8')).toBe(await readFile(join(REPO, 'boot/shutdown'), 'utf8'));
      // Boot identity: hash of kernel + genkernel's initramfs, in the image and appended to the initramfs.
      const genkernelInitramfs = Buffer.from(`initramfs ${KV}\n`);
      const expectedId = `${KV} ${createHash('sha256').update(`kernel ${KV}\n`).update(genkernelInitramfs).digest('hex').slice(0, 24)}`;
      expect(await readFile(join(root, 'boot/hn-boot-id'), 'utf8')).toBe(`${expectedId}\n`);
      const initramfs = await readFile(join(root, `boot/initramfs-${KV}.img`));
      expect(initramfs.subarray(0, genkernelInitramfs.length).equals(genkernelInitramfs)).toBe(true);
      const appended = gunzipSync(initramfs.subarray(genkernelInitramfs.length)).toString('latin1');
      expect(appended).toContain('etc/hn-initramfs-id');
      expect(appended).toContain(`${expectedId}\n`);
      expect(await readlink(join(root, 'boot/kernel'))).toBe(`vmlinuz-${KV}`);
      expect(await readlink(join(root, 'boot/initramfs'))).toBe(`initramfs-${KV}.img`);
      expect(h.ctx.gentooKernel).toEqual({ kernel: `vmlinuz-${KV}`, initramfs: `initramfs-${KV}.img`, version: KV });

      await h.run(gentooUnbind);
      // What emerge fetched went to the host cache, not into the image.
      expect(await readdir(join(h.ctx.cacheDir, 'gentoo/distfiles'))).toContain('app-containers_lxc-1.0.tar.gz');
      expect(await readdir(join(root, 'var/cache/distfiles'))).toEqual([]);
      // Binary packages from the binhost: at binrepos.conf's location, which is the host's cache.
      expect(await readFile(join(h.ctx.cacheDir, 'gentoo/binhost/gentoobinhost/app-containers/lxc-1.0-1.gpkg.tar'), 'utf8')).toBe('gpkg for app-containers/lxc\n');
      expect(await readdir(join(root, 'var/cache/binhost'))).toEqual([]);
      expect(await readdir(join(root, 'var/db/repos/hnforge'))).toEqual([]);

      await h.run(gentooScrub);
      await expect(stat(join(root, 'etc/portage/hnforge-build.conf'))).rejects.toThrow();
      await expect(stat(join(root, 'etc/portage/binrepos.conf/gentoobinhost.conf'))).rejects.toThrow();
      await expect(stat(join(root, 'var/tmp/hnforge'))).rejects.toThrow();
      const makeConf = await readFile(join(root, 'etc/portage/make.conf'), 'utf8');
      expect(makeConf).toContain('COMMON_FLAGS="-O2 -pipe"');
      expect(makeConf).not.toContain('hnforge-build.conf');

      await h.run(chrootLeave);
      expect(await mountsUnder(root)).toEqual([]);
    } finally {
      const { failed } = await h.ctx.stack.unwind();
      expect(failed).toEqual([]);
      expect(await mountsUnder(root)).toEqual([]);
    }
  });

  it('an emerge failure names the package and phase: EGENTOO_EMERGE', async () => {
    await publishStage3(mirrorRoot, key);
    const base = await tempDir('hnforge-gentoo-emergefail-');
    dirs.push(base);
    const h = await harness(testProfile(mirror.url, key, ['fail/compile']), base);
    let err: unknown;
    try {
      for (const s of [gentooStage3, gentooUnpack, gentooPortage, chrootEnter, gentooBinds]) await h.run(s);
      await h.run(gentooEmerge).catch((e) => (err = e));
    } finally {
      await h.ctx.stack.unwind();
    }
    expect(err).toBeInstanceOf(HnError);
    expect((err as HnError).code).toBe('EGENTOO_EMERGE');
    expect((err as HnError).message).toBe('emerge failed building fail/compile-1.0 (compile phase); its build log is named in the stage log');
    expect(h.progress).toContain('package 5 of 6: fail/compile-1.0');
    expect(await mountsUnder(h.ctx.root!)).toEqual([]);
  });

  it('fails fast before the long emerge: every problem of emerge --pretend in one EGENTOO_RESOLVE, nothing emerged', async () => {
    await publishStage3(mirrorRoot, key);
    const base = await tempDir('hnforge-gentoo-resolvefail-');
    dirs.push(base);
    const h = await harness(testProfile(mirror.url, key, ['masked/thing', 'keyword/other']), base);
    let err: unknown;
    try {
      for (const s of [gentooStage3, gentooUnpack, gentooPortage, chrootEnter, gentooBinds]) await h.run(s);
      await h.run(gentooEmerge).catch((e) => (err = e));
      const log = join(h.ctx.root!, 'var/log/hnforge-standin');
      expect(await readFile(join(log, 'pretend.args'), 'utf8')).toMatch(/^--pretend .*@world app-containers\/lxc .*masked\/thing keyword\/other/);
      expect(await readdir(log)).not.toContain('emerge-0.args');
    } finally {
      await h.ctx.stack.unwind();
    }
    expect(err).toBeInstanceOf(HnError);
    expect((err as HnError).code).toBe('EGENTOO_RESOLVE');
    expect((err as HnError).message).toBe(
      'emerge --pretend found 2 problem(s) (1 mask, 1 keyword); change gentoo.packages, gentoo.acceptKeywords in the profile (each listed below and in the stage log)',
    );
    expect((err as HnError).details).toEqual([
      'mask: masked/thing-1.0::gentoo masked by: package.mask -> gentoo.packages (pin a version that is not masked; hnforge writes no package.unmask)',
      'keyword: =keyword/other-1.0 ~amd64 -> gentoo.acceptKeywords',
    ]);
  });

  it('enables the XtreemFS services gentoo.xtreemfsServices names (default DIR, MRC, OSD), not the others', async () => {
    await publishStage3(mirrorRoot, key);
    const base = await tempDir('hnforge-gentoo-xtreemfs-');
    dirs.push(base);
    const h = await harness(testProfile(mirror.url, key, ['net-fs/xtreemfs']), base);
    try {
      for (const s of [gentooStage3, gentooUnpack, gentooPortage, chrootEnter, gentooBinds, gentooEmerge]) await h.run(s);
      const wants = join(h.ctx.root!, 'etc/systemd/system/multi-user.target.wants');
      expect((await readdir(wants)).sort()).toEqual(['xtreemfs-dir.service', 'xtreemfs-mrc.service', 'xtreemfs-osd.service']);
      expect(await readlink(join(wants, 'xtreemfs-osd.service'))).toBe('/usr/lib/systemd/system/xtreemfs-osd.service');
      // The build host's package.env lifted the network sandbox for XtreemFS only (Maven), and the scrub drops it.
      expect(await readFile(join(h.ctx.root!, 'etc/portage/package.env/hnforge'), 'utf8')).toMatch(/^net-fs\/xtreemfs hnforge-network\.conf$/m);
      await h.run(gentooUnbind);
      await h.run(gentooScrub);
      await expect(stat(join(h.ctx.root!, 'etc/portage/package.env/hnforge'))).rejects.toThrow();
      await expect(stat(join(h.ctx.root!, 'etc/portage/env/hnforge-network.conf'))).rejects.toThrow();
    } finally {
      await h.ctx.stack.unwind();
    }
  });

  async function failingKernel(extra: Parameters<typeof stage3Entries>[0], withChroot: boolean): Promise<{ code: string; message: string; root: string }> {
    await publishStage3(mirrorRoot, key, { entries: stage3Entries(extra) });
    const base = await tempDir('hnforge-gentoo-kernel-');
    dirs.push(base);
    const h = await harness(testProfile(mirror.url, key), base);
    let code = 'no error';
    let message = '';
    try {
      await h.run(gentooStage3);
      await h.run(gentooUnpack);
      if (withChroot) await h.run(chrootEnter);
      await h.run(gentooKernel).catch((e) => {
        code = e instanceof HnError ? e.code : String(e);
        message = String(e.message);
      });
    } finally {
      await h.ctx.stack.unwind();
    }
    return { code, message, root: h.ctx.root! };
  }

  it("stops with EGENTOO_LINUXRC_ANCHOR before genkernel runs when the image's linuxrc lacks the anchor", async () => {
    const r = await failingKernel([{ name: './usr/share/genkernel/defaults/linuxrc', content: '#!/bin/sh\n# a linuxrc from some other genkernel\nexec /sbin/init\n', mode: 0o755 }], false);
    expect(r.code).toBe('EGENTOO_LINUXRC_ANCHOR');
    expect(r.message).toContain("'# Determine root device' occurs 0 times");
    await expect(stat(join(r.root, 'var/log/hnforge-standin/genkernel.args'))).rejects.toThrow();
    await expect(lstat(join(r.root, 'boot/kernel'))).rejects.toThrow();
  });

  it('stops with EGENTOO_KERNEL_CONFIG when the built kernel dropped an option of the fragment', async () => {
    // A genkernel that "builds" with CONFIG_BLK_DEV_LOOP switched off (as olddefconfig does when a dependency is missing).
    const dropping = [
      '#!/bin/sh',
      'for a in "$@"; do case "$a" in --kernel-config=*) cfg="${a#*=}" ;; esac; done',
      'mkdir -p /boot /etc/kernels',
      `echo k > /boot/vmlinuz-${KV}; echo i > /boot/initramfs-${KV}.img`,
      `grep -v '^CONFIG_BLK_DEV_LOOP=' "$cfg" > /etc/kernels/kernel-config-${KV}`,
      `echo '# CONFIG_BLK_DEV_LOOP is not set' >> /etc/kernels/kernel-config-${KV}`,
      '',
    ].join('\n');
    const r = await failingKernel([{ name: './usr/bin/genkernel', content: dropping, mode: 0o755 }], true);
    expect(r.code).toBe('EGENTOO_KERNEL_CONFIG');
    expect(r.message).toContain('CONFIG_BLK_DEV_LOOP=y (not set; needed for the loop-mounted image)');
    await expect(lstat(join(r.root, 'boot/kernel'))).rejects.toThrow();
  });

  it('stops with EGENTOO_KERNEL_CONFIG (not a warning) when olddefconfig dropped the virtio drivers with their menu', async () => {
    // A genkernel whose base config turned the virtio menu off: the drivers vanish from the saved config.
    const dropping = [
      '#!/bin/sh',
      'for a in "$@"; do case "$a" in --kernel-config=*) cfg="${a#*=}" ;; esac; done',
      'mkdir -p /boot /etc/kernels',
      `echo k > /boot/vmlinuz-${KV}; echo i > /boot/initramfs-${KV}.img`,
      `grep -v '^CONFIG_VIRTIO' "$cfg" > /etc/kernels/kernel-config-${KV}`,
      `echo '# CONFIG_VIRTIO_MENU is not set' >> /etc/kernels/kernel-config-${KV}`,
      '',
    ].join('\n');
    const r = await failingKernel([{ name: './usr/bin/genkernel', content: dropping, mode: 0o755 }], true);
    expect(r.code).toBe('EGENTOO_KERNEL_CONFIG');
    expect(r.message).toMatch(/lacks 4 option\(s\) after olddefconfig \(first: CONFIG_VIRTIO_MENU=y \(not set; needed for virtio/);
    await expect(lstat(join(r.root, 'boot/kernel'))).rejects.toThrow();
  });

  for (const [label, extra] of [
    ['a member named ../escape', [{ name: '../escape', content: 'x' }]],
    ['an absolute member name', [{ name: '/etc/cron.d/evil', content: 'x' }]],
    ['a symlink to / followed by a member through it', [{ name: './var/evil', type: 'symlink', linkname: '/' }, { name: './var/evil/root/.ssh/authorized_keys', content: 'x' }]],
    ['a hard link to a file outside the root', [{ name: './usr/bin/shadow', type: 'link', linkname: '../../etc/shadow' }]],
  ] as const) {
    it(`refuses a correctly signed stage3 with ${label}: EGENTOO_TAR_UNSAFE, nothing unpacked`, async () => {
      await publishStage3(mirrorRoot, key, { entries: stage3Entries([...extra]) });
      const base = await tempDir('hnforge-gentoo-unsafe-');
      dirs.push(base);
      const h = await harness(testProfile(mirror.url, key), base);
      try {
        await h.run(gentooStage3);
        let code = 'no error';
        let message = '';
        await h.run(gentooUnpack).catch((e) => {
          code = e instanceof HnError ? e.code : String(e);
          message = String(e.message);
        });
        expect(code).toBe('EGENTOO_TAR_UNSAFE');
        expect(message).toMatch(/would write outside the image/);
        expect(await readdir(h.ctx.root!)).toEqual([]);
        await expect(stat(join(base, 'escape'))).rejects.toThrow();
        expect(await readdir(join(h.ctx.buildDir, 'gentoo'))).not.toContain('stage3.tar');
      } finally {
        await h.ctx.stack.unwind();
      }
    });
  }
});
