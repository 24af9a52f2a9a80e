// Pure functions of the Gentoo pipeline: parsing, decisions, generated text.
import { describe, expect, it } from 'vitest';
import { HnError } from '../../pipeline/errors.ts';
import { parseDigests, parseStage3Index, requireDigests, resolveStage3, stage3Urls, indexUrl, snapshotUrls, isClearsigned } from '../../pipeline/gentoo/index.ts';
import { checkStatus, parseGpgStatus } from '../../pipeline/gentoo/openpgp.ts';
import { checkHeader } from '../../pipeline/gentoo/tarscan.ts';
import { buildOnlyConf, emergeAtoms, makeConf, portageConfig, stripBuildOnlyBlock, BEGIN_BUILD_ONLY, type GentooProfile } from '../../pipeline/gentoo/portage-config.ts';
import { patchLinuxrc, checkKernelOptions, mergeKernelConfig, parseRequiredOptions, requiredWithFilesystems, HOOK_BEGIN, LINUXRC_ANCHOR } from '../../pipeline/gentoo/kernel.ts';
import { parseEmergeLine, EmergeTracker, explainEmergeFailure } from '../../pipeline/gentoo/emerge.ts';
import { gentooCmd } from '../../pipeline/gentoo/commands.ts';

const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e instanceof HnError ? e.code : `not an HnError: ${String(e)}`;
  }
  return 'no error';
};

export const gentooProfile = (over: Partial<GentooProfile> = {}): GentooProfile => ({
  variant: 'systemd',
  mirrors: ['https://distfiles.gentoo.org/'],
  stage3: 'latest',
  releaseKeyFingerprint: '13EBBDBEDE7A12775DFDB1BABB572E0E2D182910',
  keyring: 'keys/gentoo-release.asc',
  keys: { sources: ['keyserver', 'wkd'], keyserver: 'https://keys.gentoo.org', wkd: {} },
  portageProfile: 'default/linux/amd64/23.0/systemd',
  repository: { snapshot: '20260501' },
  binhost: { enabled: true, url: 'https://distfiles.gentoo.org/releases/amd64/binpackages/23.0/x86-64/', requireSignature: true },
  makeConf: { COMMON_FLAGS: '-O2 -pipe', CFLAGS: '${COMMON_FLAGS}', QEMU_SOFTMMU_TARGETS: 'x86_64', QEMU_USER_TARGETS: '' },
  buildOnlyMakeConf: { MAKEOPTS: '-j2', FEATURES: 'parallel-fetch' },
  use: { 'app-emulation/libvirt': ['qemu', 'lxc', 'virt-network'] },
  acceptKeywords: { 'app-containers/docker': ['~amd64'] },
  licenses: { 'sys-kernel/linux-firmware': ['linux-fw-redistributable'] },
  packages: ['app-containers/lxc', 'app-emulation/qemu'],
  networkPackages: [],
  xtreemfsServices: ['dir', 'mrc', 'osd'],
  ...over,
});

describe('stage3 index', () => {
  const body = [
    '# Latest as of Sun, 03 May 2026 16:46:04 +0000',
    '# ts=1777826764',
    '20260426T164603Z/stage3-amd64-systemd-20260426T164603Z.tar.xz 289000000',
    '20260503T164604Z/stage3-amd64-systemd-20260503T164604Z.tar.xz 290123456',
    '20260503T164604Z/stage3-amd64-systemd-mergedusr-20260503T164604Z.tar.xz 1',
  ].join('\n');

  it('reads <path> <bytes> lines of the variant and picks the newest for latest', () => {
    const entries = parseStage3Index(body, 'systemd');
    expect(entries).toHaveLength(2);
    const e = resolveStage3(entries, 'systemd', 'latest');
    expect(e).toEqual({ path: '20260503T164604Z/stage3-amd64-systemd-20260503T164604Z.tar.xz', bytes: 290123456, timestamp: '20260503T164604Z' });
    expect(stage3Urls('https://m.example/gentoo/', e).signature).toBe(
      'https://m.example/gentoo/releases/amd64/autobuilds/20260503T164604Z/stage3-amd64-systemd-20260503T164604Z.tar.xz.asc',
    );
  });
  it('resolves a pinned timestamp, listed or not', () => {
    expect(resolveStage3(parseStage3Index(body, 'systemd'), 'systemd', '20260426T164603Z').bytes).toBe(289000000);
    expect(resolveStage3(undefined, 'systemd', '20250101T000000Z')).toEqual({ path: '20250101T000000Z/stage3-amd64-systemd-20250101T000000Z.tar.xz', timestamp: '20250101T000000Z' });
  });
  it('refuses garbage and an index without the variant', () => {
    expect(code(() => parseStage3Index('<html>hello</html>', 'systemd'))).toBe('EGENTOO_INDEX_FORMAT');
    expect(code(() => parseStage3Index(body, 'openrc'))).toBe('EGENTOO_INDEX_FORMAT');
    expect(code(() => resolveStage3(undefined, 'systemd', 'yesterday'))).toBe('EGENTOO_PROFILE');
  });
  it('builds index and snapshot URLs', () => {
    expect(indexUrl('https://distfiles.gentoo.org', 'openrc')).toBe('https://distfiles.gentoo.org/releases/amd64/autobuilds/latest-stage3-amd64-openrc.txt');
    expect(snapshotUrls('https://distfiles.gentoo.org/', '20260501').signature).toBe('https://distfiles.gentoo.org/snapshots/gentoo-20260501.tar.xz.gpgsig');
  });
});

describe('DIGESTS', () => {
  const f = 'stage3-amd64-systemd-20260503T164604Z.tar.xz';
  const text = ['# BLAKE2B HASH', `${'a'.repeat(128)}  ${f}`, `${'b'.repeat(128)}  ${f}.CONTENTS.gz`, '# SHA512 HASH', `${'C'.repeat(128)}  ${f}`, ''].join('\n');
  it('reads both blocks for the tarball only', () => {
    expect(parseDigests(text, f)).toEqual({ blake2b: 'a'.repeat(128), sha512: 'c'.repeat(128) });
  });
  it('requires both algorithms', () => {
    expect(code(() => requireDigests(parseDigests(text.replace('# SHA512 HASH', '# SHA256 HASH'), f), f))).toBe('EGENTOO_DIGESTS_FORMAT');
  });
  it('recognises a clearsigned body', () => {
    expect(isClearsigned('-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n')).toBe(true);
    expect(isClearsigned(text)).toBe(false);
  });
});

describe('gpg status', () => {
  const pinned = '13EBBDBEDE7A12775DFDB1BABB572E0E2D182910';
  const good = (signing: string, primary: string) =>
    `[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 2D182910 releng\n[GNUPG:] VALIDSIG ${signing} 2026-05-03 1777826764 0 4 0 1 10 00 ${primary}\n`;
  it('accepts a signature by the pinned key or one of its subkeys', () => {
    expect(checkStatus(parseGpgStatus(good(pinned, pinned)), pinned)).toEqual({ ok: true });
    expect(checkStatus(parseGpgStatus(good('534E4209AB49EEE1C19D96162C44695DB9F6043D', pinned)), pinned.toLowerCase())).toEqual({ ok: true });
  });
  it('refuses another key, a bad signature, an expired key, no signature', () => {
    const other = 'F'.repeat(40);
    expect(checkStatus(parseGpgStatus(good(other, other)), pinned).ok).toBe(false);
    expect(checkStatus(parseGpgStatus('[GNUPG:] BADSIG 2D182910 releng\n'), pinned).ok).toBe(false);
    expect(checkStatus(parseGpgStatus(`${good(pinned, pinned)}[GNUPG:] EXPKEYSIG 2D182910 releng\n`), pinned).ok).toBe(false);
    expect(checkStatus(parseGpgStatus('[GNUPG:] ERRSIG 2D182910 1 10 00 1777826764 9\n[GNUPG:] NO_PUBKEY 2D182910\n'), pinned).ok).toBe(false);
    expect(checkStatus(parseGpgStatus(''), pinned).ok).toBe(false);
  });
});

describe('tar member checks', () => {
  const check = (name: string, type = 'file', linkname?: string, seen = new Set<string>()) => checkHeader({ name, type, linkname }, seen)?.why;
  it('accepts normal members, absolute symlinks and relative symlinks that stay inside', () => {
    expect(check('./usr/bin/emerge')).toBeUndefined();
    expect(check('./etc/localtime', 'symlink', '/usr/share/zoneinfo/UTC')).toBeUndefined();
    expect(check('./etc/mtab', 'symlink', '../proc/self/mounts')).toBeUndefined();
    expect(check('./usr/bin/hard', 'link', './usr/bin/emerge')).toBeUndefined();
    expect(check('./dev/null', 'character-device')).toBeUndefined();
    expect(check('pax_global_header', 'pax-global-header')).toBeUndefined();
    expect(check('./x', 'gnu-sparse')).toMatch(/unsupported member type/);
  });
  it('refuses absolute names, .., escaping links and members below a symlink', () => {
    expect(check('/etc/passwd')).toBe('absolute path');
    expect(check('./usr/../../etc/passwd')).toBe("'..' component");
    expect(check('./etc/evil', 'symlink', '../../../root')).toMatch(/escapes the root/);
    expect(check('./x', 'link', '/etc/shadow')).toMatch(/absolute/);
    expect(check('./x', 'link', '../outside')).toMatch(/outside the archive/);
    const seen = new Set<string>();
    expect(check('./evil', 'symlink', '/etc', seen)).toBeUndefined();
    expect(check('./evil/cron.d/job', 'file', undefined, seen)).toMatch(/below the symlink evil/);
  });
  it('applies --strip-components before judging', () => {
    expect(checkHeader({ name: 'gentoo-20260501/a/../../x', type: 'file' }, new Set(), 1)?.why).toBe("'..' component");
    expect(checkHeader({ name: 'gentoo-20260501/l', type: 'symlink', linkname: '../x' }, new Set(), 1)?.why).toMatch(/escapes/);
    expect(checkHeader({ name: 'gentoo-20260501/', type: 'directory' }, new Set(), 1)).toBeUndefined();
  });
});

describe('portage configuration', () => {
  it('writes every file from the profile with build-only settings apart', () => {
    const c = portageConfig(gentooProfile());
    expect(Object.keys(c.files).sort()).toEqual([
      '/etc/portage/binrepos.conf/gentoobinhost.conf',
      '/etc/portage/hnforge-build.conf',
      '/etc/portage/make.conf',
      '/etc/portage/package.accept_keywords/hnforge',
      '/etc/portage/package.license/hnforge',
      '/etc/portage/package.use/hnforge',
      '/etc/portage/repos.conf/gentoo.conf',
      '/etc/portage/repos.conf/hnforge.conf',
    ]);
    expect(c.buildOnly).toEqual(['/etc/portage/hnforge-build.conf', '/etc/portage/binrepos.conf/gentoobinhost.conf']);
    expect(c.symlinks['/etc/portage/make.profile']).toBe('../../var/db/repos/gentoo/profiles/default/linux/amd64/23.0/systemd');
    const make = c.files['/etc/portage/make.conf']!;
    expect(make).toContain('CFLAGS="${COMMON_FLAGS}"');
    expect(make).toContain('QEMU_USER_TARGETS=""');
    expect(make).not.toContain('MAKEOPTS');
    expect(make).toContain('source /etc/portage/hnforge-build.conf');
    const build = c.files['/etc/portage/hnforge-build.conf']!;
    expect(build).toContain('MAKEOPTS="-j2"');
    expect(build).toContain('FEATURES="${FEATURES} parallel-fetch getbinpkg binpkg-request-signature"');
    expect(build).toContain('DISTDIR="/var/cache/distfiles"');
    expect(c.files['/etc/portage/binrepos.conf/gentoobinhost.conf']).toContain('verify-signature = true');
    // portage >= 3.0.77 downloads to /var/cache/binhost/<repo> by default; named explicitly, bound to the host cache, scrubbed.
    expect(c.files['/etc/portage/binrepos.conf/gentoobinhost.conf']).toMatch(/^\[gentoobinhost\]$[\s\S]*^location = \/var\/cache\/binhost\/gentoobinhost$/m);
    expect(c.files['/etc/portage/repos.conf/gentoo.conf']).toMatch(/snapshot gentoo-20260501[\s\S]*auto-sync = no/);
    expect(c.files['/etc/portage/repos.conf/hnforge.conf']).toContain('location = /var/db/repos/hnforge');
    expect(c.files['/etc/portage/package.use/hnforge']).toContain('app-emulation/libvirt qemu lxc virt-network');
    expect(c.files['/etc/portage/package.accept_keywords/hnforge']).toContain('app-containers/docker ~amd64');
  });
  it('binds a host cache at every place portage downloads to, binhost included, and the scrub empties them', async () => {
    const { gentooBindMounts } = await import('../../stages/gentoo-binds.ts');
    const { SCRUB_REMOVE } = await import('../../stages/scrub.ts');
    const { BUILD_ONLY } = await import('../../pipeline/gentoo/portage-config.ts');
    const binds = gentooBindMounts({ cacheDir: '/cache', paths: { gentooWork: '/w' } } as never);
    expect(binds.filter((b) => !b.readOnly).map((b) => [b.image, b.source])).toEqual([
      ['/var/cache/distfiles', '/cache/gentoo/distfiles'],
      ['/var/cache/binpkgs', '/cache/gentoo/binpkgs'],
      ['/var/cache/binhost', '/cache/gentoo/binhost'],
      ['/var/cache/genkernel', '/cache/gentoo/genkernel'],
    ]);
    for (const d of BUILD_ONLY.emptiedDirectories) expect(SCRUB_REMOVE, d).toContain(`${d.slice(1)}/*`);
  });
  it('scrub strips the build-only block and nothing else', () => {
    const make = makeConf(gentooProfile());
    const stripped = stripBuildOnlyBlock(make);
    expect(stripped).not.toContain('hnforge-build.conf');
    expect(stripped).not.toContain(BEGIN_BUILD_ONLY);
    expect(stripped).toContain('COMMON_FLAGS="-O2 -pipe"');
  });
  it('lifts the network sandbox for gentoo.networkPackages only, through build-only package.env files', () => {
    const c = portageConfig(gentooProfile({ networkPackages: ['net-fs/xtreemfs'] }));
    expect(c.files['/etc/portage/env/hnforge-network.conf']).toMatch(/^FEATURES="-network-sandbox"$/m);
    expect(c.files['/etc/portage/package.env/hnforge']).toMatch(/^net-fs\/xtreemfs hnforge-network\.conf$/m);
    expect(c.files['/etc/portage/package.env/hnforge']!.split('\n').filter((l) => l && !l.startsWith('#'))).toEqual(['net-fs/xtreemfs hnforge-network.conf']);
    expect(c.buildOnly).toEqual(expect.arrayContaining(['/etc/portage/env/hnforge-network.conf', '/etc/portage/package.env/hnforge']));
    expect(code(() => portageConfig(gentooProfile({ networkPackages: ['not an atom'] })))).toBe('EGENTOO_PROFILE');
  });
  it('turns the binhost off completely when disabled', () => {
    const c = portageConfig(gentooProfile({ binhost: { enabled: false, url: 'https://x.example/', requireSignature: true } }));
    expect(c.remove).toEqual(['/etc/portage/binrepos.conf/gentoobinhost.conf']);
    expect(buildOnlyConf(gentooProfile({ binhost: { enabled: false, url: 'https://x.example/', requireSignature: true }, buildOnlyMakeConf: {} }))).not.toContain('FEATURES');
  });
  it('refuses an unpinned repository, bad names and bad atoms', () => {
    expect(code(() => portageConfig(gentooProfile({ repository: {} })))).toBe('EGENTOO_PROFILE');
    expect(code(() => portageConfig(gentooProfile({ repository: { snapshot: '20260501', gitCommit: 'a'.repeat(40) } })))).toBe('EGENTOO_PROFILE');
    expect(code(() => portageConfig(gentooProfile({ makeConf: { 'bad name': 'x' } })))).toBe('EGENTOO_PROFILE');
    expect(code(() => portageConfig(gentooProfile({ use: { 'not an atom': ['x'] } })))).toBe('EGENTOO_PROFILE');
    expect(code(() => makeConf(gentooProfile({ makeConf: { X: 'a\nFEATURES="-sandbox"' } })))).toBe('EGENTOO_PROFILE');
  });
  it('emerges gentoo.packages plus the node packages that are atoms', () => {
    expect(emergeAtoms({ packages: ['openssh', 'net-misc/openssh'], gentoo: gentooProfile() })).toEqual(['app-containers/lxc', 'app-emulation/qemu', 'net-misc/openssh']);
  });
});

describe('linuxrc hook', () => {
  const linuxrc = ['#!/bin/sh', 'mount_sysfs', 'run mkdir -p "${NEW_ROOT}"', '', `\t${LINUXRC_ANCHOR}`, 'while true', 'do', 'done', ''].join('\n');
  it('inserts the hook right before the anchor, once', () => {
    const out = patchLinuxrc(linuxrc);
    const lines = out.split('\n');
    const hook = lines.indexOf(HOOK_BEGIN);
    const anchor = lines.findIndex((l) => l.trim() === LINUXRC_ANCHOR);
    expect(hook).toBeGreaterThan(0);
    expect(anchor).toBeGreaterThan(hook);
    expect(out).toContain('. /lib/hn-boot.sh');
    expect(out).toContain('hn_prepare_root "${NEW_ROOT}"');
    expect(out).toContain('hn_setup_exitrd /lib/hn-shutdown');
    expect(out).toContain('exec switch_root "${NEW_ROOT}"');
  });
  it('fails loudly when the anchor is missing, doubled, or the file is already patched', () => {
    expect(code(() => patchLinuxrc('#!/bin/sh\necho hi\n'))).toBe('EGENTOO_LINUXRC_ANCHOR');
    expect(code(() => patchLinuxrc(`${linuxrc}\n${LINUXRC_ANCHOR}\n`))).toBe('EGENTOO_LINUXRC_ANCHOR');
    expect(code(() => patchLinuxrc(patchLinuxrc(linuxrc)))).toBe('EGENTOO_LINUXRC_ANCHOR');
  });
});

describe('kernel config', () => {
  const fragment = 'CONFIG_KVM=m\nCONFIG_BLK_DEV_LOOP=y\nCONFIG_OVERLAY_FS=m\nCONFIG_NEW_IN_6_17=y\n# CONFIG_DEBUG_X is not set\n';
  it('fragment appended after the base wins', () => {
    expect(mergeKernelConfig('# CONFIG_KVM is not set\n', fragment).trim().split('\n').at(-5)).toBe('CONFIG_KVM=m');
  });
  it('classifies options the kernel set otherwise (error) and does not know (warning)', () => {
    const final = 'CONFIG_KVM=y\n# CONFIG_BLK_DEV_LOOP is not set\nCONFIG_OVERLAY_FS=m\nCONFIG_DEBUG_X=y\n';
    expect(checkKernelOptions(fragment, final)).toEqual({
      wrong: ['CONFIG_BLK_DEV_LOOP=y (got not set)', 'CONFIG_DEBUG_X=n (got y)'],
      absent: ['CONFIG_NEW_IN_6_17=y'],
      missing: [],
    });
  });
  it('fails, not warns, when a required option is absent after olddefconfig (virtio dropped with its menu)', () => {
    const required = parseRequiredOptions('## virtio\nCONFIG_VIRTIO_MENU=y\nCONFIG_VIRTIO_BLK=y\n## kvm\nCONFIG_KVM=m\nCONFIG_NEW_IN_6_17=y\n');
    const final = 'CONFIG_KVM=y\nCONFIG_BLK_DEV_LOOP=y\nCONFIG_OVERLAY_FS=m\n# CONFIG_VIRTIO_MENU is not set\n';
    expect(checkKernelOptions(fragment, final, required)).toEqual({
      wrong: [],
      absent: [],
      missing: [
        'CONFIG_VIRTIO_MENU=y (not set; needed for virtio)',
        'CONFIG_VIRTIO_BLK=y (absent; needed for virtio)',
        'CONFIG_NEW_IN_6_17=y (absent; needed for kvm)',
      ],
    });
    expect(checkKernelOptions(fragment, `${final}CONFIG_VIRTIO_MENU=y\nCONFIG_VIRTIO_BLK=y\nCONFIG_NEW_IN_6_17=y\n`, required).missing).toEqual([]);
  });
  it('accepts =y for a required module, refuses =m for a required built-in', () => {
    const required = parseRequiredOptions('CONFIG_A=m\nCONFIG_B=y\n');
    expect(checkKernelOptions('', 'CONFIG_A=y\nCONFIG_B=m\n', required).missing).toEqual(['CONFIG_B=y (got m; needed for required)']);
  });
  it('reads the list strictly: groups, comments, no typos, no duplicates', () => {
    expect(parseRequiredOptions('# c\n\n## boot\nCONFIG_A=y\n## kvm\nCONFIG_B=m\n')).toEqual([
      { option: 'CONFIG_A', value: 'y', group: 'boot' },
      { option: 'CONFIG_B', value: 'm', group: 'kvm' },
    ]);
    for (const bad of ['CONFIG_A=n', 'CONFIG_A', 'BLK_DEV_LOOP=y', 'CONFIG_A=y # trailing', 'CONFIG_A=y\nCONFIG_A=m']) {
      expect(code(() => parseRequiredOptions(bad)), bad).toBe('EGENTOO_PROFILE');
    }
  });
  it("adds the profile's host-partition filesystems the list does not name", () => {
    expect(requiredWithFilesystems(parseRequiredOptions('CONFIG_EXT4_FS=y\n'), ['ext4', 'btrfs'])).toEqual([
      { option: 'CONFIG_EXT4_FS', value: 'y', group: 'required' },
      { option: 'CONFIG_BTRFS_FS', value: 'm', group: 'host partition filesystems (profile boot.hostpartFilesystems)' },
    ]);
  });
});

describe('emerge progress', () => {
  it('reads source and binary merges', () => {
    expect(parseEmergeLine('>>> Emerging (3 of 40) app-containers/lxc-6.0.4::gentoo')).toEqual({ n: 3, of: 40, pkg: 'app-containers/lxc-6.0.4', binary: false });
    expect(parseEmergeLine('>>> Emerging binary (4 of 40) sys-apps/iproute2-6.12.0::gentoo')?.binary).toBe(true);
    expect(parseEmergeLine('>>> Installing (3 of 40) app-containers/lxc-6.0.4::gentoo')).toBeUndefined();
    const shown: string[] = [];
    const t = new EmergeTracker((s) => shown.push(s));
    t.line('>>> Emerging (1 of 2) a/b-1::gentoo');
    t.line('noise');
    expect(shown).toEqual(['package 1 of 2: a/b-1']);
  });
  it('explains a failure in one line', () => {
    const t = new EmergeTracker(() => {});
    [' * ERROR: app-emulation/qemu-9.2.0::gentoo failed (compile phase):', 'noise'].forEach(t.line);
    expect(explainEmergeFailure(t.notable)).toBe('emerge failed building app-emulation/qemu-9.2.0 (compile phase); its build log is named in the stage log');
    expect(explainEmergeFailure(['The following keyword changes are necessary to proceed:'])).toMatch(/gentoo\.acceptKeywords/);
    expect(explainEmergeFailure(['emerge: there are no ebuilds to satisfy "net-fs/nope".'])).toMatch(/nothing to satisfy an atom \("net-fs\/nope"\.\)/);
    expect(explainEmergeFailure(['something else'])).toBeUndefined();
  });
});

describe('command lines', () => {
  it('unpacks as Gentoo documents', () => {
    expect(gentooCmd.tarExtract('/c/s.tar', '/r')).toMatchObject({ file: 'tar', args: ['xpf', '/c/s.tar', '--xattrs', '--xattrs-include=*.*', '--numeric-owner', '-C', '/r'] });
  });
  it('runs genkernel unattended with the hnforge linuxrc and overlay', () => {
    const c = gentooCmd.genkernel('/r', { kernelConfig: '/k', linuxrc: '/l', initramfsOverlay: '/o', filesystems: ['btrfs', 'ext4'] });
    expect(c.file).toBe('chroot');
    expect(c.args).toEqual(expect.arrayContaining(['/r', 'genkernel', '--no-menuconfig', '--kernel-config=/k', '--linuxrc=/l', '--initramfs-overlay=/o', '--btrfs', '--e2fsprogs', 'all']));
    expect(c.args.at(-1)).toBe('all');
  });
  it('emerges non-interactively and updates @world', () => {
    const c = gentooCmd.emerge('/r', ['app-containers/lxc']);
    expect(c.args.slice(0, 2)).toEqual(['/r', 'emerge']);
    expect(c.args).toEqual(expect.arrayContaining(['--ask=n', '--update', '--deep', '--newuse', '@world', 'app-containers/lxc']));
  });
});

describe('kernel fragment pipeline/gentoo/kernel/hn.config', () => {
  it('enables what LXC, Docker, KVM and the boot chain need (ARCHITECTURE.md section 5), once each', async () => {
    const { readFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { parseKernelConfig } = await import('../../pipeline/gentoo/kernel.ts');
    const text = await readFile(join(import.meta.dirname, '../../pipeline/gentoo/kernel/hn.config'), 'utf8');
    const lines = text.split('\n').filter((l) => /^CONFIG_/.test(l));
    const names = lines.map((l) => l.split('=')[0]);
    expect(new Set(names).size, 'an option is set twice').toBe(names.length);
    const opts = parseKernelConfig(text);
    const required = {
      lxc: ['NAMESPACES', 'UTS_NS', 'IPC_NS', 'PID_NS', 'NET_NS', 'USER_NS', 'CGROUPS', 'CPUSETS', 'MEMCG', 'CGROUP_DEVICE', 'CGROUP_FREEZER', 'CGROUP_SCHED', 'POSIX_MQUEUE', 'VETH', 'MACVLAN'],
      docker: ['CGROUP_BPF', 'KEYS', 'BRIDGE', 'BRIDGE_NETFILTER', 'IP_NF_FILTER', 'IP_NF_NAT', 'IP_NF_RAW', 'IP_NF_TARGET_MASQUERADE',
        'NETFILTER_XT_MATCH_ADDRTYPE', 'NETFILTER_XT_MATCH_CONNTRACK', 'NETFILTER_XT_MATCH_IPVS', 'NF_NAT', 'OVERLAY_FS', 'VXLAN', 'IPVLAN'],
      kvm: ['KVM', 'KVM_INTEL', 'KVM_AMD', 'TUN', 'VHOST_NET'],
      boot: ['BLK_DEV_LOOP', 'EXT4_FS', 'BTRFS_FS', 'VFAT_FS', 'NLS_CODEPAGE_437', 'EFI', 'BLK_DEV_INITRD', 'DEVTMPFS', 'RD_XZ', 'RD_GZIP'],
      virtio: ['VIRTIO_MENU', 'VIRTIO_PCI', 'VIRTIO_BLK', 'VIRTIO_NET'],
      xtreemfs: ['FUSE_FS'],
    };
    for (const [what, list] of Object.entries(required)) {
      for (const o of list) expect(['y', 'm'], `${what}: CONFIG_${o}`).toContain(opts.get(`CONFIG_${o}`));
    }
    // Built in: the initramfs reaches the image without loading a module first.
    for (const o of ['BLK_DEV_LOOP', 'EXT4_FS', 'VIRTIO_PCI', 'VIRTIO_BLK']) expect(opts.get(`CONFIG_${o}`), o).toBe('y');
  });

  it('sets every option of required.config at least as strongly, so a kernel built from it passes the check', async () => {
    const { readFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const dir = join(import.meta.dirname, '../../pipeline/gentoo/kernel');
    const fragment = await readFile(join(dir, 'hn.config'), 'utf8');
    const required = requiredWithFilesystems(parseRequiredOptions(await readFile(join(dir, 'required.config'), 'utf8')), ['ext4', 'btrfs']);
    expect(required.length).toBeGreaterThan(30);
    expect(required.map((r) => r.option)).toEqual(expect.arrayContaining(['CONFIG_VIRTIO_MENU', 'CONFIG_BLK_DEV_LOOP', 'CONFIG_FUSE_FS', 'CONFIG_KVM', 'CONFIG_RD_GZIP']));
    // The fragment as the final config: what the check sees when olddefconfig kept everything.
    expect(checkKernelOptions(fragment, fragment, required)).toEqual({ wrong: [], absent: [], missing: [] });
  });
});
