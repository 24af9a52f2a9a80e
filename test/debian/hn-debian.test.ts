// hn-debian built for real from the host's Debian mirror, then inspected
// without booting (booting is test/boot's job).
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readlink, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { TEST_CACHE } from '../support/test-cache.ts';
import { join } from 'node:path';
import { IMAGE_PATHS } from '../../pipeline/boot/contract.ts';
import { keygen } from '../../pipeline/publish/keygen.ts';
import type { ImageFileEntry } from '../../pipeline/publish/manifest-types.ts';
import { signDetached } from '../../pipeline/publish/signing.ts';
import { dayOf } from '../../pipeline/publish/version.ts';
import { run } from '../../pipeline/seam/run.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hnforge } from '../support/cli.ts';
import { mountImageReadOnly } from '../support/image.ts';
import { systemState } from '../support/system.ts';

const cache = TEST_CACHE;
const out = '/var/tmp/hnforge-test-out';

describe('[root] hn-debian from scratch', () => {
  let before: Awaited<ReturnType<typeof systemState>>;
  let image: Awaited<ReturnType<typeof mountImageReadOnly>> | undefined;
  let report: {
    packages: { name: string; version: string }[]; stages: { name: string; status: string }[]; apparentBytes: number; usedBytes: number;
    version: string; gitRevision?: string; sources: Record<string, string>; publishingKey?: { path: string; fingerprints: string[] }; files: ImageFileEntry[];
  };
  let buildSeconds = 0;
  let keys: Awaited<ReturnType<typeof keygen>>;
  let scratch: string;
  // A store already holding today's version 900 of the profile: the build's default version counts past it.
  const day = dayOf(new Date());

  beforeAll(async () => {
    before = await systemState(cache);
    scratch = await mkdtemp(join(tmpdir(), 'hnforge-hn-debian-'));
    keys = await keygen({ out: join(scratch, 'keys') });
    const channel = join(scratch, 'store/hn-debian/stable');
    await mkdir(channel, { recursive: true });
    await writeFile(join(channel, 'SHA256SUMS'), `${'a'.repeat(64)} *hn-root_${day}.900.img.zst\n`);
    // --from image-create: every stage runs, whatever the cache holds (the package cache is still used).
    const r = await hnforge(
      ['build', '--profile', 'hn-debian', '--cache', cache, '--output', out, '--from', 'image-create', '--store', `file://${join(scratch, 'store')}`, '--signing-key', keys.privateKey],
      { timeoutMs: 900_000 },
    );
    if (r.code !== 0) throw new Error(`build failed (${r.code}): ${r.stderr.slice(-3000)}`);
    buildSeconds = r.seconds;
    report = JSON.parse(await readFile(join(out, 'hn-debian/hn-root.report.json'), 'utf8'));
    image = await mountImageReadOnly(join(out, 'hn-debian/hn-root.img'));
  });
  afterAll(async () => {
    await image?.release();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('leaves no loop device or mount behind', async () => {
    await image?.release();
    image = undefined;
    expect(await systemState(cache)).toEqual(before);
    image = await mountImageReadOnly(join(out, 'hn-debian/hn-root.img'));
  });

  it('holds lxc-start, dockerd, qemu-system-x86_64 and sshd', async () => {
    const root = image!.root;
    for (const tool of ['usr/bin/lxc-start', 'usr/sbin/dockerd', 'usr/bin/qemu-system-x86_64', 'usr/sbin/sshd', 'usr/sbin/libvirtd']) {
      const s = await stat(join(root, tool));
      expect(s.mode & 0o111, tool).not.toBe(0);
    }
  });

  it('has /boot/kernel and /boot/initramfs symlinks that resolve inside the image', async () => {
    const root = image!.root;
    for (const link of ['boot/kernel', 'boot/initramfs']) {
      expect((await lstat(join(root, link))).isSymbolicLink(), link).toBe(true);
      const target = await readlink(join(root, link));
      expect(target.startsWith('/'), `${link} -> ${target} must be relative to stay inside the image`).toBe(false);
      const resolved = await realpath(join(root, link));
      expect(resolved.startsWith(root + '/boot/')).toBe(true);
      expect((await stat(resolved)).size).toBeGreaterThan(1_000_000);
    }
  });

  it('has the node\'s fstab lines, /data0 and the mount points', async () => {
    const root = image!.root;
    const fstab = await readFile(join(root, 'etc/fstab'), 'utf8');
    expect(fstab).toMatch(/^LABEL=EFI-BOOT\s+\/boot\/loader\s+vfat\s+noauto,noatime\s+1\s+2$/m);
    // Pass 0, not the seed's 1: the initramfs mounted it read-write already (no second fsck).
    expect(fstab).toMatch(/^LABEL=hostpart\s+\/hostpart\s+auto\s+noatime\s+0\s+0$/m);
    expect(fstab).toMatch(/^LABEL=hn-root\s+\/\s+auto\s+defaults,noatime\s+0\s+0$/m);
    expect(await readlink(join(root, 'data0'))).toBe('/hostpart/data');
    for (const dir of ['hostpart', 'boot/loader', 'warehouse']) expect((await stat(join(root, dir))).isDirectory()).toBe(true);
    expect((await lstat(join(root, 'etc/systemd/system/systemd-networkd-wait-online.service'))).isSymbolicLink()).toBe(true);
  });

  it('carries no build-host identity', async () => {
    const root = image!.root;
    expect(await readFile(join(root, 'etc/machine-id'), 'utf8')).toBe('');
    await expect(lstat(join(root, 'usr/sbin/policy-rc.d'))).rejects.toThrow();
    // The build host's DNS (mmdebstrap copies its resolv.conf in) does not ship; each node gets its own.
    expect(await readFile(join(root, 'etc/resolv.conf'), 'utf8')).not.toMatch(/nameserver/);
    expect(await readFile(join(root, 'etc/hostname'), 'utf8')).toBe('hn-unconfigured\n');
    const keys = (await import('node:fs/promises')).readdir(join(root, 'etc/ssh'));
    expect((await keys).filter((f) => f.startsWith('ssh_host_'))).toEqual([]);
  });

  it('publishes the checksum sidecar beside the image, matching the report', async () => {
    const text = await readFile(join(out, 'hn-debian/hn-root.img.sha256'), 'utf8');
    expect(text).toMatch(/^format=hnforge-sidecar-1\nsize=16106127360\nsha256=[0-9a-f]{64}\n/);
    expect(text).toContain(`sha256=${(report as unknown as { sha256: string }).sha256}\n`);
  });

  it('reports every package with its version, per-stage times and sizes', () => {
    expect(report.packages.length).toBeGreaterThan(200);
    expect(report.packages.find((p) => p.name === 'docker.io')?.version).toMatch(/^\d/);
    expect(report.stages.every((s) => s.status === 'ran')).toBe(true);
    expect(report.apparentBytes).toBe(15 * 1024 ** 3);
    expect(report.usedBytes).toBeLessThan(3 * 1024 ** 3);
    console.log(`hn-debian from scratch: ${buildSeconds.toFixed(1)} s, ${(report.usedBytes / 2 ** 20).toFixed(0)} MiB used`);
  });

  it('carries its version in /etc/hn-release and os-release, counted past the store\'s versions of the day', async () => {
    const root = image!.root;
    // 901, or more when an earlier run today published past it (the report in `out` counts; --from never reuses a version).
    expect(report.version).toMatch(new RegExp(`^${day}\\.\\d+$`));
    expect(Number(report.version.split('.')[1])).toBeGreaterThan(900);
    const hnRelease = await readFile(join(root, IMAGE_PATHS.hnRelease), 'utf8');
    expect(hnRelease).toContain(`HN_VERSION="${report.version}"\n`);
    expect(hnRelease).toContain('HN_PROFILE="hn-debian"\nHN_BASE="debian"\n');
    expect(hnRelease).toMatch(/^HN_BUILT="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"$/m);
    // Debian links /etc/os-release to ../usr/lib/os-release: the image's is now a file of its own.
    expect((await lstat(join(root, IMAGE_PATHS.osRelease))).isFile()).toBe(true);
    const osRelease = await readFile(join(root, IMAGE_PATHS.osRelease), 'utf8');
    expect(osRelease).toMatch(/^ID=debian$/m);
    expect(osRelease).toMatch(/^IMAGE_ID="hn-debian"$/m);
    expect(osRelease.match(/^IMAGE_VERSION=.*$/gm)).toEqual([`IMAGE_VERSION="${report.version}"`]);
    expect(await readFile(join(root, 'usr/lib/os-release'), 'utf8')).not.toContain('IMAGE_VERSION');
  });

  it('bakes the publishing keyring into the image: gpgv accepts a signature by the key with it', async () => {
    const keyring = join(image!.root, IMAGE_PATHS.publishingKeyring);
    expect(report.publishingKey).toEqual({ path: IMAGE_PATHS.publishingKeyring, fingerprints: [keys.fingerprint] });
    const data = join(scratch, 'SHA256SUMS');
    await writeFile(data, `${'b'.repeat(64)} *hn-root_${report.version}.img.zst\n`);
    await writeFile(`${data}.gpg`, await signDetached(await readFile(data), await readFile(keys.privateKey, 'utf8')));
    const { stdout } = await run({ file: 'gpgv', args: ['--status-fd', '1', '--keyring', keyring, `${data}.gpg`, data], timeoutMs: 30_000 }, { capture: true });
    expect(stdout).toContain(`VALIDSIG ${keys.fingerprint}`);
    await writeFile(data, 'tampered\n');
    await expect(run({ file: 'gpgv', args: ['--keyring', keyring, `${data}.gpg`, data], timeoutMs: 30_000 })).rejects.toThrow(/exit code/);
  });

  it('reports the version, the hnforge commit, the pinned sources and the file list of the finished tree', async () => {
    const root = image!.root;
    expect(report.gitRevision === undefined || /^[0-9a-f]{40}(-dirty)?$/.test(report.gitRevision)).toBe(true);
    expect(report.sources['debian.mirror']).toMatch(/^https?:\/\//);
    expect(report.sources['debian.mirrorDate']).toBeTruthy();
    expect(report.sources['debian.suite']).toBe('bookworm');
    const byPath = new Map(report.files.map((f) => [f.path, f]));
    expect(report.files.length).toBeGreaterThan(10_000);
    const hnRelease = byPath.get(IMAGE_PATHS.hnRelease)!;
    expect(hnRelease).toMatchObject({ type: 'f', mode: '0644', uid: 0, gid: 0 });
    expect(hnRelease.sha256).toBe(createHash('sha256').update(await readFile(join(root, IMAGE_PATHS.hnRelease))).digest('hex'));
    expect(byPath.get('/boot/kernel')).toMatchObject({ type: 'l', target: await readlink(join(root, 'boot/kernel')) });
    expect(byPath.get('/data0')).toMatchObject({ type: 'l', target: '/hostpart/data' });
    // The finished tree: no build-only file, and proc was not mounted (nothing of it listed).
    expect(byPath.has('/usr/sbin/policy-rc.d')).toBe(false);
    expect(report.files.some((f) => f.path.startsWith('/proc/'))).toBe(false);
    const text = await readFile(join(out, 'hn-debian/hn-root.report.txt'), 'utf8');
    expect(text).toContain(`version        ${report.version}\n`);
    expect(text).not.toContain('"/etc/hn-release"');
  });
});
