// `hnforge boot-test` run as a user would (bin/hnforge), on the small test
// image the boot-chain tests boot (busybox userspace whose /sbin/init prints
// HN-USERSPACE): it passes on a good image, names where a broken one stopped,
// keeps the serial log, leaves the image untouched and nothing behind (work
// directory, qemu). The messages and refusals that need no boot are checked
// without qemu.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { whereStopped } from '../../pipeline/boot-test.ts';
import { bootCmd } from '../../pipeline/seam/boot-commands.ts';
import { cmd } from '../../pipeline/seam/command.ts';
import { run } from '../../pipeline/seam/run.ts';
import { hnforge } from '../support/cli.ts';
import { buildTestImage, CACHE } from './fixtures.ts';

const KEEP = process.env.HNFORGE_TEST_KEEP === '1';

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk);
  return h.digest('hex');
}

/** PIDs of processes whose command line mentions `text` (qemu runs on a disk inside the work directory). */
async function processesMentioning(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text) && cmdline.includes('qemu')) pids.push(Number(name));
  }
  return pids;
}

describe('boot-test: messages and refusals (no boot)', () => {
  it('names the furthest boot milestone and the last decisive line', () => {
    expect(whereStopped([])).toBe('it stopped in the firmware (no GRUB output)');
    expect(whereStopped(['BdsDxe: loading Boot0001', 'Welcome to GRUB!', "HN-GRUB: loading /hn-root.img"])).toBe(
      'it stopped in GRUB (loading the image from hostpart) (last: "HN-GRUB: loading /hn-root.img")',
    );
    expect(whereStopped(['HN-GRUB: loading /hn-root.img', '[    0.000000] Linux version 6.1.0', 'HN-INITRAMFS start kernel=6.1.0', 'HN-BOOT: FAIL: no partition labelled hostpart', 'HN-BOOT: FAIL outcome: reboot in 5 s', 'HN-BOOT: rebooting now']))
      .toBe('it stopped in the initramfs (last: "HN-BOOT: FAIL: no partition labelled hostpart")');
    expect(whereStopped(['HN-INITRAMFS start', 'HN-TIME initramfs-done=1.2s', 'Welcome to Debian GNU/Linux 12 (bookworm)!', '[    3.1] systemd[1]: Reached target basic.target']))
      .toMatch(/^it stopped in the booted root, before multi-user.target \(last: "HN-TIME initramfs-done=1.2s"\)$/);
  });

  it('a missing image and a file that is not ext4 are one line each, exit 2, before anything is installed or copied', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hn-boot-test-usage-'));
    try {
      const missing = await hnforge(['boot-test', '--image', join(dir, 'nope.img')], { timeoutMs: 60_000 });
      expect(missing.code).toBe(2);
      expect(missing.stderr.trim()).toBe(`hnforge: error: --image ${join(dir, 'nope.img')}: no such image file (build one with: hnforge build --profile NAME)`);
      await writeFile(join(dir, 'zeros.img'), Buffer.alloc(1 << 20));
      const notExt = await hnforge(['boot-test', '--image', join(dir, 'zeros.img')], { timeoutMs: 60_000 });
      expect(notExt.code).toBe(2);
      expect(notExt.stderr.trim().split('\n')).toHaveLength(1);
      expect(notExt.stderr).toMatch(/not an ext4 image/);
      const badTimeout = await hnforge(['boot-test', '--image', join(dir, 'zeros.img'), '--timeout', '0'], { timeoutMs: 60_000 });
      expect(badTimeout.code).toBe(2);
      expect(badTimeout.stderr.trim()).toBe('hnforge: error: --timeout 0: a number of seconds greater than 0');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('[qemu][root] hnforge boot-test boots an image the way a server does', { timeout: 900_000 }, () => {
  let work: string;
  let good: string;
  let noInit: string;

  beforeAll(async () => {
    await mkdir(CACHE, { recursive: true });
    work = await mkdtemp(join(CACHE, 'boot-test-'));
    await mkdir(join(work, 'good'));
    good = join(work, 'good', 'hn-root.img');
    await buildTestImage({ workDir: work, id: 'BT', flavour: 'cloud-amd64', out: good });
    // The same image without its /sbin/init (sbin -> bin): the initramfs refuses to switch to it and fails.
    await mkdir(join(work, 'broken'));
    noInit = join(work, 'broken', 'hn-root.img');
    await run(cmd.copySparse(good, noInit));
    await run(bootCmd.debugfs(noInit, 'rm /bin/init', true));
  }, 600_000);

  afterAll(async () => {
    if (work && !KEEP) await rm(work, { recursive: true, force: true });
  });

  it('passes on a good image: JSON result, the marker names hn-root.img on hostpart, log kept, image unchanged, nothing left behind', async () => {
    const before = await sha256(good);
    const r = await hnforge(['boot-test', '--image', good, '--timeout', '240', '--json'], { timeoutMs: 600_000 });
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const result = JSON.parse(r.stdout) as { ok: boolean; marker: string; log: string; atMs: number };
    expect(result.ok).toBe(true);
    expect(result.marker).toMatch(/^HN-USERSPACE .* backing=\/hostpart\/hn-root\.img /);
    expect(result.marker).toContain(' image=BT ');
    expect(result.log).toBe(join(work, 'good', 'hn-root.boot-test.log'));
    expect(await readFile(result.log, 'utf8')).toContain('HN-USERSPACE');
    expect(await sha256(good)).toBe(before);
    expect((await readdir(join(work, 'good'))).sort()).toEqual(['hn-root.boot-test.log', 'hn-root.img']);
    expect(await processesMentioning(join(work, 'good'))).toEqual([]);
  });

  it('fails on an image without /sbin/init: one line saying where it stopped and where the serial log is, exit 1', async () => {
    const r = await hnforge(['boot-test', '--image', noInit, '--timeout', '240'], { timeoutMs: 600_000 });
    expect(r.code, r.stderr.slice(-3000)).toBe(1);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('hnforge: error:'));
    expect(errors).toHaveLength(1);
    const log = join(work, 'broken', 'hn-root.boot-test.log');
    expect(errors[0]).toMatch(/did not reach the booted system \(HN-USERSPACE\): it stopped in the initramfs \(last: "HN-BOOT: FAIL: [^"]+"\); serial log: /);
    expect(errors[0]!.endsWith(`serial log: ${log}`)).toBe(true);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(await readFile(log, 'utf8')).toContain('HN-BOOT: FAIL');
    expect((await readdir(join(work, 'broken'))).sort()).toEqual(['hn-root.boot-test.log', 'hn-root.img']);
    expect(await processesMentioning(join(work, 'broken'))).toEqual([]);
  });

  it('a boot longer than --timeout fails naming the timeout; qemu is gone afterwards', async () => {
    const r = await hnforge(['boot-test', '--image', good, '--timeout', '3'], { timeoutMs: 300_000 });
    expect(r.code, r.stderr.slice(-3000)).toBe(1);
    expect(r.stderr).toMatch(/hnforge: error: .* did not reach the booted system \(HN-USERSPACE\) within 3 s: it stopped in /);
    expect(existsSync(join(work, 'good', 'hn-root.boot-test.log'))).toBe(true);
    expect(await processesMentioning(join(work, 'good'))).toEqual([]);
  });
});
