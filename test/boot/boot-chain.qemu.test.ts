// Real boots under qemu (OVMF, q35, software emulation) of small test images:
// the whole chain GRUB -> loopback hn-root.img -> kernel + initramfs from
// inside it -> hn-boot.sh rotation -> switch_root -> busybox userspace ->
// systemd-style exitrd shutdown. Needs root (debugfs/mkfs on disk files only,
// no loop devices or mounts on the host) and qemu-system-x86 + ovmf.
//
// Image A: Debian's cloud kernel; image B: Debian's generic kernel. So
// `uname -r` tells which image's own kernel booted.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, truncate, copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { provision } from '../../pipeline/provision.ts';
import { bootDisk, type BootResult } from '../../pipeline/qemu.ts';
import { writeSidecar } from '../../pipeline/boot/sidecar.ts';
import {
  buildTestImage, CACHE, copyDisk, hostpartState, listHostpart, putFiles, removeFiles, setGrubConfig, TEST_GRUB,
  type Disk, type TestImage, catHostpart,
} from './fixtures.ts';

// Hard limits against hangs, not speed targets: a shared 2-core CI box under load has taken 110 s to one boot.
const BOOT_TIMEOUT = 240_000;
// Two guests at a time: each software-emulated vCPU keeps one host core busy.
const limit = pLimit(Number(process.env.HNFORGE_TEST_BOOTS_IN_PARALLEL ?? 2));
const KEEP = process.env.HNFORGE_TEST_KEEP === '1';

let work: string;
let A: TestImage;
let B: TestImage;
let base: Disk;
const files: Record<string, string> = {};
const timings: { name: string; ms: number; userspaceMs?: number; hostpart?: string; rotate?: string }[] = [];

function userspace(r: BootResult) {
  const line = r.markers.filter((m) => m.line.startsWith('HN-USERSPACE')).at(-1);
  if (!line) return undefined;
  const kv = Object.fromEntries(line.line.split(' ').slice(1).map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)]));
  return { ...kv, atMs: line.atMs } as Record<string, string> & { atMs: number };
}

const text = (r: BootResult) => r.lines.join('\n');

async function boot(d: Disk, name: string, opts: { stopAt?: RegExp; timeoutMs?: number } = {}): Promise<BootResult> {
  const r = await limit(() =>
    bootDisk({ disk: d.path, logFile: join(work, `${name}.serial.log`), timeoutMs: opts.timeoutMs ?? BOOT_TIMEOUT, stopAt: opts.stopAt }),
  );
  const u = userspace(r);
  timings.push({
    name,
    ms: r.durationMs,
    userspaceMs: u?.atMs,
    hostpart: /HN-TIME hostpart=(\S+)/.exec(text(r))?.[1],
    rotate: [...text(r).matchAll(/HN-TIME rotate=(\S+)/g)].map((m) => m[1]).join(','),
  });
  return r;
}

async function freshDisk(name: string): Promise<Disk> {
  return copyDisk(base, join(work, `${name}.disk`));
}

describe.concurrent('[qemu][root] boot chain under qemu', { timeout: 900_000 }, () => {
  beforeAll(async () => {
    await mkdir(CACHE, { recursive: true });
    work = await mkdtemp(join(CACHE, 'qemu-test-'));
    A = await buildTestImage({ workDir: work, id: 'A', flavour: 'cloud-amd64', out: join(work, 'A.img') });
    // B carries its own kernel arguments (as a profile's boot.kernelArgs); A relies on GRUB's default.
    B = await buildTestImage({ workDir: work, id: 'B', flavour: 'amd64', out: join(work, 'B.img'), kernelArgs: ['console=tty0', 'console=ttyS0,115200n8', 'hn.test.args=from-image-B'] });
    files.B = B.path;
    files.Bsidecar = join(work, 'B.img.sha256');
    await writeSidecar(B.path, files.Bsidecar, 'test B');
    files.Btrunc = join(work, 'B-trunc.img');
    await copyFile(B.path, files.Btrunc);
    await truncate(files.Btrunc, Math.floor(B.bytes / 2));
    files.Bcorrupt = join(work, 'B-corrupt.img');
    await copyFile(B.path, files.Bcorrupt);
    {
      const { open } = await import('node:fs/promises');
      const fh = await open(files.Bcorrupt, 'r+');
      await fh.write(Buffer.from('corrupted by the test'), 0, 21, 4096 * 3 + 17);
      await fh.close();
    }
    files.A = A.path;
    files.empty = join(work, 'empty');
    await writeFile(files.empty, '');
    const p = await provision({
      disk: join(work, 'base.disk'), image: A.path, hostpartFs: 'ext4', yes: true, sizeBytes: 384 * 2 ** 20,
      grub: TEST_GRUB, hostpartFiles: { 'data/precious': 'gold\n' }, workDir: work,
    });
    base = { path: join(work, 'base.disk'), efiOffset: p.efiOffsetBytes!, hostpartOffset: p.hostpartOffsetBytes! };
  }, 300_000);

  afterAll(async () => {
    // eslint-disable-next-line no-console
    console.log(`boot timings (ms from qemu start):\n${timings.map((t) => `  ${t.name}: total ${t.ms}, userspace ${t.userspaceMs ?? '-'}, hostpart ${t.hostpart ?? '-'}, rotate ${t.rotate || '-'}`).join('\n')}`);
    if (work && !KEEP) await rm(work, { recursive: true, force: true });
  });

  it('boots hn-root.img: its kernel, root on the loop device, /hostpart mounted, /data0 valid; clean poweroff leaves hostpart clean', async () => {
    const d = await freshDisk('plain');
    const r = await boot(d, 'plain');
    expect(r.end, text(r)).toBe('poweroff');
    const u = userspace(r)!;
    expect(u, text(r)).toBeDefined();
    expect(u.uname).toBe(A.kernelVersion);
    expect(u.image).toBe('A');
    expect(u.root).toMatch(/^\/dev\/loop\d+$/);
    expect(u.backing).toBe('/hostpart/hn-root.img');
    expect(u.hostpart).toMatch(/^\/dev\/vda2,ext4,rw/);
    expect(u.data0).toBe('/hostpart/data');
    // GRUB's default kernel arguments: the serial console a server's serial-over-LAN shows.
    expect(text(r)).toMatch(/HN-CMDLINE .*console=tty0 console=ttyS0,115200n8/);
    expect(text(r)).not.toContain('hn.test.args=');
    expect(text(r)).toContain('HN-DATA0 ok precious=gold');
    expect(text(r)).toContain('HN-SHUTDOWN host partition unmounted cleanly');
    expect(await hostpartState(d)).toEqual({ clean: true, needsRecovery: false, fsck: 0 });
    expect(await catHostpart(d, '/data/boots')).toBe('A\n');
  });

  it('update: the new image boots with its own kernel, the previous one is kept as hn-root-old.img', async () => {
    const d = await freshDisk('update');
    await putFiles(d, { '/hn-root-new.img': files.B!, '/hn-root-new.img.sha256': files.Bsidecar! });
    const r = await boot(d, 'update', { timeoutMs: 360_000 });
    expect(r.end, text(r)).toBe('poweroff');
    const inits = r.markers.filter((m) => m.line.startsWith('HN-INITRAMFS'));
    expect(inits.map((m) => m.line.split(' ')[2])).toEqual([`kernel=${A.kernelVersion}`, `kernel=${B.kernelVersion}`]);
    expect(text(r)).toMatch(/updated: hn-root-new.img is now hn-root.img/);
    const u = userspace(r)!;
    expect(u.uname).toBe(B.kernelVersion);
    expect(u.image).toBe('B');
    // The new image's own kernel arguments, read by GRUB from inside it.
    expect(text(r)).toMatch(/HN-CMDLINE .*hn\.test\.args=from-image-B/);
    const names = await listHostpart(d);
    expect(names).toContain('hn-root-old.img');
    expect(names).not.toContain('hn-root-new.img');
    expect(names).not.toContain('hn-root-new.img.sha256');
    expect(await hostpartState(d)).toMatchObject({ clean: true, needsRecovery: false });
  });

  it('revert: the old image boots, the current one becomes hn-root-broken.img, the flag is gone, the next boot stays', async () => {
    const d = await freshDisk('revert');
    await putFiles(d, { '/hn-root.img': files.B!, '/hn-root-old.img': files.A!, '/system-revert': files.empty! });
    const r = await boot(d, 'revert', { timeoutMs: 360_000 });
    expect(r.end, text(r)).toBe('poweroff');
    expect(text(r)).toMatch(/reverted: hn-root-old.img is now hn-root.img/);
    expect(userspace(r)).toMatchObject({ uname: A.kernelVersion, image: 'A' });
    const names = await listHostpart(d);
    expect(names).toContain('hn-root-broken.img');
    expect(names).not.toContain('system-revert');
    expect(names).not.toContain('hn-root-old.img');
    const again = await boot(d, 'revert-again');
    expect(again.markers.filter((m) => m.line.startsWith('HN-INITRAMFS'))).toHaveLength(1);
    expect(userspace(again)).toMatchObject({ image: 'A' });
  });

  it.each([
    ['truncated', 'Btrunc', /size \d+ bytes, expected \d+ \(truncated/],
    ['corrupt', 'Bcorrupt', /sha256 mismatch/],
  ])('a %s hn-root-new.img is set aside and reported; the current image boots', async (what, key, reason) => {
    const d = await freshDisk(`bad-${what}`);
    await putFiles(d, { '/hn-root-new.img': files[key]!, '/hn-root-new.img.sha256': files.Bsidecar! });
    const r = await boot(d, `bad-${what}`);
    expect(r.end, text(r)).toBe('poweroff');
    expect(text(r)).toMatch(reason);
    expect(text(r)).toMatch(/hn-root-new.img set aside as hn-root-new.img.rejected/);
    expect(userspace(r)).toMatchObject({ image: 'A', uname: A.kernelVersion });
    const names = await listHostpart(d);
    expect(names).toContain('hn-root-new.img.rejected');
    expect(names).not.toContain('hn-root-new.img');
    expect(await catHostpart(d, '/hn-boot.log')).toMatch(/set aside as hn-root-new.img.rejected/);
  });

  it.each([1, 2, 3, 4, 5])('power cut after update step %i: the next boot succeeds on old or new, data intact', async (n) => {
    const d = await freshDisk(`cut-${n}`);
    await putFiles(d, { '/hn-root-new.img': files.B!, '/hn-root-new.img.sha256': files.Bsidecar! });
    await setGrubConfig(d, { extraKernelArgs: [`hn.test.stop_after=${n}`] }, work);
    const cut = await boot(d, `cut-${n}-a`);
    expect(cut.end, text(cut)).toBe('poweroff');
    expect(text(cut)).toContain(`TEST power cut after step ${n}`);
    expect(userspace(cut)).toBeUndefined();
    await setGrubConfig(d, {}, work);
    const r = await boot(d, `cut-${n}-b`, { timeoutMs: 360_000 });
    expect(r.end, text(r)).toBe('poweroff');
    const u = userspace(r)!;
    expect(u, text(r)).toBeDefined();
    expect(['A', 'B']).toContain(u.image);
    // GRUB and the initramfs agree: the image that runs is the one whose kernel runs.
    expect(u.uname).toBe(u.image === 'A' ? A.kernelVersion : B.kernelVersion);
    expect(text(r)).toContain('HN-DATA0 ok precious=gold');
    // The update is completed by the next boot whatever the cut left.
    expect(u.image).toBe('B');
  });

  it('power cut in the middle of a revert (after step 14): the next boot runs the old image', async () => {
    const d = await freshDisk('cut-revert');
    await putFiles(d, { '/hn-root.img': files.B!, '/hn-root-old.img': files.A!, '/system-revert': files.empty! });
    await setGrubConfig(d, { extraKernelArgs: ['hn.test.stop_after=14'] }, work);
    const cut = await boot(d, 'cut-revert-a');
    expect(text(cut)).toContain('TEST power cut after step 14');
    await setGrubConfig(d, {}, work);
    const r = await boot(d, 'cut-revert-b', { timeoutMs: 360_000 });
    expect(r.end, text(r)).toBe('poweroff');
    expect(userspace(r)).toMatchObject({ image: 'A', uname: A.kernelVersion });
    expect(text(r)).toContain('HN-DATA0 ok precious=gold');
    expect(await listHostpart(d)).not.toContain('system-revert');
  });

  it('missing host partition: a clear console message, then a reboot (no prompt, no hang)', async () => {
    const d = await freshDisk('no-hostpart');
    await setGrubConfig(d, { hostpartLabel: 'no-such-label', extraKernelArgs: ['hn.hostpart_timeout=3'] }, work);
    const r = await boot(d, 'no-hostpart', { stopAt: /FAIL outcome: reboot/ });
    expect(r.end, text(r)).toBe('stopped');
    expect(text(r)).toMatch(/host partition LABEL=no-such-label not found after 3 s/);
    expect(text(r)).toMatch(/FAIL outcome: reboot/);
  });

  it('missing image: GRUB says so on the console and reboots (no prompt, no hang)', async () => {
    const d = await freshDisk('no-image');
    await removeFiles(d, ['/hn-root.img']);
    const r = await boot(d, 'no-image', { stopAt: /HN-GRUB: no bootable/, timeoutMs: 180_000 });
    expect(r.end, text(r)).toBe('stopped');
    expect(text(r)).toMatch(/HN-GRUB: no bootable hn-root.img or hn-root-old.img on LABEL=hostpart; rebooting/);
  });

  it('hn-root.img missing but hn-root-old.img present: GRUB falls back, the initramfs restores it', async () => {
    const d = await freshDisk('only-old');
    await putFiles(d, { '/hn-root-old.img': files.A! });
    await removeFiles(d, ['/hn-root.img']);
    const r = await boot(d, 'only-old');
    expect(r.end, text(r)).toBe('poweroff');
    expect(text(r)).toMatch(/hn-root.img was missing: restored hn-root-old.img as hn-root.img/);
    expect(userspace(r)).toMatchObject({ image: 'A', backing: '/hostpart/hn-root.img' });
  });
});
