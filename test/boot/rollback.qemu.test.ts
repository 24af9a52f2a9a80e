// Automatic rollback, proved by real boots under qemu (OVMF, q35, software
// emulation) of the small test image: a broken new image of each kind is
// promoted on a disk running the good image A; with no input, within the
// trial budget + 1 boots after the promotion, the node runs A again, the
// broken image is set aside as hn-root-broken.img and the reason is in
// hn-boot.log and in `hnforge status`. A good image is confirmed on its first
// trial boot and stays; a power cut during a trial boot does not lose the count.
//
// One build (A, B) serves every scenario: the broken variants are copies of B
// edited offline (test/boot/rollback-images.ts). Only the good-image test boots
// the promotion itself; the others start from the files it leaves (written by
// hn-boot.sh's own hn_trial_start), which saves a boot each. Needs root (debugfs, mtools,
// a read-only loop device for `hnforge status`) and qemu-system-x86 + ovmf.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { provision } from '../../pipeline/provision.ts';
import { bootDisk, type BootResult } from '../../pipeline/qemu.ts';
import { hnforge } from '../support/cli.ts';
import { CACHE, catHostpart, copyDisk, hostpartState, listHostpart, putFiles, TEST_GRUB, type Disk } from './fixtures.ts';
import { BROKEN, buildRollbackImages, promotedFiles, REASON, TRIAL, type RollbackImages } from './rollback-images.ts';

// Hard limits against hangs, not speed targets (a shared 2-core box has taken 110 s for one boot).
const BOOT_TIMEOUT = 600_000;
const limit = pLimit(Number(process.env.HNFORGE_TEST_BOOTS_IN_PARALLEL ?? 2));
const KEEP = process.env.HNFORGE_TEST_KEEP === '1';

let work: string;
let images: RollbackImages;
let base: Disk;
const timings: string[] = [];

const text = (r: BootResult) => r.lines.join('\n');
/** Boots GRUB started in one qemu run (each prints HN-GRUB: loading <image>). */
const grubLoads = (r: BootResult) => r.lines.filter((l) => l.includes('HN-GRUB: loading')).map((l) => l.slice(l.indexOf('loading ') + 8).trim());

function userspace(r: BootResult) {
  const line = r.markers.filter((m) => m.line.startsWith('HN-USERSPACE')).at(-1);
  if (!line) return undefined;
  const kv = Object.fromEntries(line.line.split(' ').slice(1).map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)]));
  return { ...kv, atMs: line.atMs } as Record<string, string> & { atMs: number };
}

async function boot(d: Disk, name: string, opts: { stopAt?: RegExp } = {}): Promise<BootResult> {
  const r = await limit(() => bootDisk({ disk: d.path, logFile: join(work, `${name}.serial.log`), timeoutMs: BOOT_TIMEOUT, stopAt: opts.stopAt }));
  timings.push(`${name}: ${(r.durationMs / 1000).toFixed(1)} s, ${grubLoads(r).length} boots (${grubLoads(r).join(', ')}), end ${r.end}`);
  return r;
}

async function status(d: Disk) {
  const r = await hnforge(['status', '--disk', d.path, '--json'], { timeoutMs: 120_000 });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as {
    images: Record<'current' | 'previous' | 'broken' | 'waiting', string | null>;
    trial: { running: boolean; budget?: number; grubBoots?: number | null };
    lastRevert: { at: string; reason: string } | null;
  };
}

describe.concurrent('[qemu][root] automatic rollback under qemu', { timeout: 900_000 }, () => {
  beforeAll(async () => {
    await mkdir(CACHE, { recursive: true });
    work = await mkdtemp(join(CACHE, 'qemu-rollback-'));
    images = await buildRollbackImages(work);
    const p = await provision({
      disk: join(work, 'base.disk'), image: images.A.path, hostpartFs: 'ext4', yes: true, sizeBytes: 448 * 2 ** 20,
      grub: TEST_GRUB, hostpartFiles: { 'data/precious': 'gold\n' }, workDir: work,
    });
    base = { path: join(work, 'base.disk'), efiOffset: p.efiOffsetBytes!, hostpartOffset: p.hostpartOffsetBytes! };
  }, 300_000);

  afterAll(async () => {
    // eslint-disable-next-line no-console
    console.log(`rollback boots:\n  ${timings.join('\n  ')}`);
    if (work && !KEEP) await rm(work, { recursive: true, force: true });
  });

  it.each(BROKEN)('broken new image (%s): back on A within budget + 1 boots, set aside, reason logged and shown by hnforge status', async (kind) => {
    // The state the initramfs leaves right after promoting the broken image (the good-image test boots a real promotion).
    const d = await copyDisk(base, join(work, `${kind}.disk`));
    await putFiles(d, await promotedFiles(work, images, images.broken[kind], kind));
    const r = await boot(d, kind);
    expect(r.end, text(r).slice(-4000)).toBe('poweroff');
    // At most budget trial boots and the boot that reverts.
    const loads = grubLoads(r);
    expect(loads.length, loads.join(', ')).toBeLessThanOrEqual(TRIAL.budget + 1);
    expect(loads.at(-1)).toBe('hn-root-old.img');
    expect(userspace(r), text(r).slice(-3000)).toMatchObject({ image: 'A', backing: '/hostpart/hn-root.img' });
    expect(text(r)).toContain('HN-DATA0 ok precious=gold');
    const names = await listHostpart(d);
    expect(names).toContain('hn-root-broken.img');
    expect(names).not.toContain('hn-trial.cfg');
    expect(names).not.toContain('hn-root-old.img');
    const log = await catHostpart(d, '/hn-boot.log');
    expect(log).toMatch(REASON[kind]);
    const s = await status(d);
    expect(s.images).toMatchObject({ current: 'A', broken: 'B', previous: null });
    expect(s.trial.running).toBe(false);
    expect(s.lastRevert?.reason).toMatch(REASON[kind]);
    expect(await hostpartState(d)).toMatchObject({ clean: true, needsRecovery: false });
  });

  it('a good new image is confirmed on its first trial boot and stays', async () => {
    const d = await copyDisk(base, join(work, 'good.disk'));
    await putFiles(d, { '/hn-root-new.img': images.good.image, '/hn-root-new.img.sha256': images.good.sidecar });
    const r = await boot(d, 'good');
    expect(r.end, text(r).slice(-4000)).toBe('poweroff');
    expect(text(r)).toMatch(/trial boot 1 of 2 of hn-root.img/);
    expect(text(r)).toMatch(/HN-HEALTH confirmed: all checks passed \(hostpart data0\) on trial boot 1/);
    expect(userspace(r)).toMatchObject({ image: 'B' });
    const again = await boot(d, 'good-again');
    expect(again.end).toBe('poweroff');
    expect(text(again)).not.toMatch(/HN-BOOT: trial boot/);
    expect(grubLoads(again)).toEqual(['hn-root.img']);
    expect(userspace(again)).toMatchObject({ image: 'B' });
    const names = await listHostpart(d);
    expect(names).not.toContain('hn-trial.cfg');
    expect(names).not.toContain('hn-root-broken.img');
    const s = await status(d);
    expect(s.images).toMatchObject({ current: 'B', previous: 'A', broken: null });
    expect(s.trial.running).toBe(false);
    expect(s.lastRevert).toBeNull();
  });

  it('a power cut during a trial boot does not lose the count: the next boot is trial boot 2, and it confirms', async () => {
    const d = await copyDisk(base, join(work, 'cut.disk'));
    await putFiles(d, await promotedFiles(work, images, images.good, 'cut'));
    // qemu killed the moment the first trial boot reaches its initramfs: no sync, no unmount.
    const cut = await boot(d, 'cut-a', { stopAt: /trial boot 1 of 2 of hn-root.img/ });
    expect(cut.end, text(cut).slice(-3000)).toBe('stopped');
    const mid = await status(d);
    expect(mid.trial).toMatchObject({ running: true, budget: 2, grubBoots: 1 });
    const r = await boot(d, 'cut-b');
    expect(r.end, text(r).slice(-4000)).toBe('poweroff');
    expect(text(r)).toMatch(/trial boot 2 of 2 of hn-root.img/);
    expect(text(r)).toMatch(/HN-HEALTH confirmed: .* on trial boot 2/);
    expect(userspace(r)).toMatchObject({ image: 'B' });
    expect(await listHostpart(d)).not.toContain('hn-trial.cfg');
  });
});
