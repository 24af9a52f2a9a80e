// hn-debian built for real from the host's Debian mirror, then inspected
// without booting (booting is test/boot's job).
import { lstat, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { TEST_CACHE } from '../support/test-cache.ts';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hnforge } from '../support/cli.ts';
import { mountImageReadOnly } from '../support/image.ts';
import { systemState } from '../support/system.ts';

const cache = TEST_CACHE;
const out = '/var/tmp/hnforge-test-out';

describe('[root] hn-debian from scratch', () => {
  let before: Awaited<ReturnType<typeof systemState>>;
  let image: Awaited<ReturnType<typeof mountImageReadOnly>> | undefined;
  let report: { packages: { name: string; version: string }[]; stages: { name: string; status: string }[]; apparentBytes: number; usedBytes: number };
  let buildSeconds = 0;

  beforeAll(async () => {
    before = await systemState(cache);
    // --from image-create: every stage runs, whatever the cache holds (the package cache is still used).
    const r = await hnforge(['build', '--profile', 'hn-debian', '--cache', cache, '--output', out, '--from', 'image-create'], { timeoutMs: 900_000 });
    if (r.code !== 0) throw new Error(`build failed (${r.code}): ${r.stderr.slice(-3000)}`);
    buildSeconds = r.seconds;
    report = JSON.parse(await readFile(join(out, 'hn-debian/hn-root.report.json'), 'utf8'));
    image = await mountImageReadOnly(join(out, 'hn-debian/hn-root.img'));
  });
  afterAll(async () => {
    await image?.release();
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
});
