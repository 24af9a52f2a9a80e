// The Gentoo base profile resolves, and every Gentoo stage's dry-run plan names
// what the issue asks for: stage3 URL and key, portage files, emerge and
// genkernel command lines. Runs nothing.

import { describe, expect, it } from 'vitest';
import { buildPaths } from '../../pipeline/plan.ts';
import { join } from 'node:path';
import type { BuildContext } from '../../pipeline/context.ts';
import { resolveProfile } from '../../pipeline/profiles.ts';
import { ResourceStack } from '../../pipeline/seam/resources.ts';
import { gentooBinds, gentooUnbind } from '../../stages/gentoo-binds.ts';
import { gentooEmerge, overlayInputFiles, splitPackage } from '../../stages/gentoo-emerge.ts';
import { stagesFor } from '../../pipeline/stages-table.ts';
import { gentooKernel } from '../../stages/gentoo-kernel.ts';
import { gentooPortage } from '../../stages/gentoo-portage.ts';
import { gentooScrub } from '../../stages/gentoo-scrub.ts';
import { gentooStage3 } from '../../stages/gentoo-stage3.ts';
import { gentooUnpack } from '../../stages/gentoo-unpack.ts';
import { REPO } from './fixtures.ts';

async function ctx(): Promise<BuildContext> {
  const profile = await resolveProfile(join(REPO, 'profiles'), 'gentoo-base', { allowAbstract: true });
  const paths = buildPaths({ ...profile, name: 'hn' }, { repoDir: REPO, cacheDir: '/var/cache/hnforge', outputDir: '/out' });
  return { profile, paths, repoDir: REPO, buildDir: paths.build, cacheDir: paths.cache, outputDir: paths.output, stack: new ResourceStack(), dryRun: true };
}

describe('gentoo-base profile and dry-run plans', () => {
  it('resolves with the release key, a pinned repository and the node packages', async () => {
    const c = await ctx();
    expect(c.profile.base).toBe('gentoo');
    expect(c.profile.gentoo?.releaseKeyFingerprint).toBe('13EBBDBEDE7A12775DFDB1BABB572E0E2D182910');
    expect(c.profile.gentoo?.repository.snapshot).toMatch(/^\d{8}$/);
    expect(c.profile.gentoo?.packages).toEqual(expect.arrayContaining(['net-fs/xtreemfs', 'sys-apps/hnforge-node', 'sys-kernel/genkernel']));
  });

  it('plans name the stage3 URL and key, the portage files, the emerge and genkernel command lines', async () => {
    const c = await ctx();
    c.gentooStage3 = {
      url: 'https://distfiles.gentoo.org/releases/amd64/autobuilds/20261122T170000Z/stage3-amd64-systemd-20261122T170000Z.tar.xz',
      fingerprint: '13EBBDBEDE7A12775DFDB1BABB572E0E2D182910',
    };
    const plan = [gentooStage3, gentooUnpack, gentooPortage, gentooBinds, gentooEmerge, gentooKernel, gentooUnbind, gentooScrub].flatMap((s) => s.plan!(c)).join('\n');
    expect(plan).toContain('stage3: https://distfiles.gentoo.org/releases/amd64/autobuilds/20261122T170000Z/stage3-amd64-systemd-20261122T170000Z.tar.xz');
    expect(plan).toContain('must verify with key 13EBBDBEDE7A12775DFDB1BABB572E0E2D182910');
    expect(plan).toContain('write /etc/portage/make.conf:');
    expect(plan).toContain('write /etc/portage/binrepos.conf/gentoobinhost.conf (build only, removed by the scrub):');
    expect(plan).toContain('snapshots/gentoo-20261125.tar.xz signed by DCD05B71EAB94199527F44ACDB6B8C1F96D8BF6D');
    expect(plan).toMatch(/chroot \/var\/cache\/hnforge\/build\/hn\/root getuto/);
    expect(plan).toMatch(/chroot \/var\/cache\/hnforge\/build\/hn\/root emerge --ask=n .* @world app-containers\/lxc .* sys-kernel\/linux-firmware/);
    expect(plan).toMatch(/chroot \/var\/cache\/hnforge\/build\/hn\/root genkernel .*--linuxrc=\/var\/tmp\/hnforge\/linuxrc .*--initramfs-overlay=\/var\/tmp\/hnforge\/initramfs-overlay .* all/);
    expect(plan).toContain('tar xpf');
    expect(plan).toContain("'--xattrs-include=*.*' --numeric-owner");
  });

  it('the key plan fetches each pinned key by fingerprint (key server, then WKD) unless --keyring names a file', async () => {
    const { gentooKeys } = await import('../../stages/gentoo-keys.ts');
    const c = await ctx();
    const plan = gentooKeys.plan!(c).join('\n');
    expect(plan).toContain('GET https://keys.gentoo.org/pks/lookup?op=get&options=mr&search=0x13EBBDBEDE7A12775DFDB1BABB572E0E2D182910');
    expect(plan).toContain('GET https://keys.gentoo.org/pks/lookup?op=get&options=mr&search=0xDCD05B71EAB94199527F44ACDB6B8C1F96D8BF6D');
    expect(plan).toMatch(/0x13EB[\s\S]*openpgpkey\.gentoo\.org\/\.well-known\/openpgpkey\/gentoo\.org\/hu\/\w{32}\?l=releng/);
    const airGapped = { ...c, profile: { ...c.profile, gentoo: { ...c.profile.gentoo!, keyring: '/media/keys.asc' } } };
    expect(gentooKeys.plan!(airGapped).join('\n')).not.toContain('GET ');
    expect(gentooKeys.plan!(airGapped)[0]).toContain('from /media/keys.asc (air-gapped; nothing fetched)');
  });

  it('the emerge key covers the overlay and the node package sources', () => {
    const files = overlayInputFiles(REPO);
    expect(files).toContain(join(REPO, 'portage-overlay/net-fs/xtreemfs/xtreemfs-1.6.0_pre20241007.ebuild'));
    expect(files).toContain(join(REPO, 'boot/hn-boot.sh'));
  });

  it('splits Gentoo package versions for the build report', () => {
    expect(splitPackage('app-containers/lxc-6.0.4-r1')).toEqual({ name: 'app-containers/lxc', version: '6.0.4-r1' });
    expect(splitPackage('sys-kernel/gentoo-sources-6.12.31')).toEqual({ name: 'sys-kernel/gentoo-sources', version: '6.12.31' });
  });

  it('the stage table orders the Gentoo stages as they need', () => {
    const names = stagesFor('gentoo').map((s) => s.name);
    const at = (n: string) => names.indexOf(n);
    expect(at('gentoo-keys')).toBe(0);
    expect(at('gentoo-stage3')).toBe(1);
    expect(at('gentoo-unpack')).toBe(at('image-mount') + 1);
    expect(at('gentoo-binds')).toBe(at('chroot-enter') + 1);
    expect(at('gentoo-kernel')).toBeLessThan(at('layout'));
    expect(at('gentoo-scrub')).toBe(at('scrub') - 1);
    expect(at('gentoo-portage')).toBeLessThan(at('chroot-enter'));
    expect(names.filter((n) => n.startsWith('gentoo-'))).toHaveLength(9);
    expect(at('gentoo-unbind')).toBeLessThan(at('gentoo-scrub'));
    expect(at('chroot-leave')).toBeGreaterThan(at('scrub'));
  });
});
