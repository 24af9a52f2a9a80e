// The seed's recommended host partition filesystem: btrfs. One qemu run: GRUB
// loop-mounts hn-root.img from btrfs, the initramfs loads its btrfs modules
// only after seeing a btrfs superblock, promotes a waiting hn-root-new.img
// (hard link + renames on btrfs), reboots into the new image's own kernel,
// and the exitrd shutdown leaves a filesystem `btrfs check` finds clean.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { provision } from '../../pipeline/provision.ts';
import { bootDisk } from '../../pipeline/qemu.ts';
import { run } from '../../pipeline/seam/run.ts';
import { writeSidecar } from '../../pipeline/boot/sidecar.ts';
import { buildTestImage, CACHE, TEST_GRUB, type TestImage } from './fixtures.ts';

describe('[qemu][root] btrfs host partition', { timeout: 900_000 }, () => {
  let work: string;
  let A: TestImage;
  let B: TestImage;
  let disk: string;
  let hostpartOffset: number;

  beforeAll(async () => {
    work = await mkdtemp(join(CACHE, 'qemu-btrfs-'));
    A = await buildTestImage({ workDir: work, id: 'A', flavour: 'cloud-amd64', out: join(work, 'A.img') });
    B = await buildTestImage({ workDir: work, id: 'B', flavour: 'amd64', out: join(work, 'B.img') });
    await writeSidecar(B.path, join(work, 'B.img.sha256'));
    disk = join(work, 'disk');
    const p = await provision({
      disk, image: A.path, hostpartFs: 'btrfs', yes: true, sizeBytes: 512 * 2 ** 20, grub: TEST_GRUB, workDir: work,
      hostpartFiles: { 'data/precious': 'gold\n' },
      hostpartCopies: { 'hn-root-new.img': B.path, 'hn-root-new.img.sha256': join(work, 'B.img.sha256') },
    });
    hostpartOffset = p.hostpartOffsetBytes!;
  }, 600_000);

  afterAll(async () => {
    if (work && process.env.HNFORGE_TEST_KEEP !== '1') await rm(work, { recursive: true, force: true });
  });

  it('boots from btrfs, updates to the new image with its own kernel, shuts down clean', async () => {
    const r = await bootDisk({ disk, logFile: join(work, 'serial.log'), timeoutMs: 480_000 });
    const all = r.lines.join('\n');
    expect(r.end, all.slice(-3000)).toBe('poweroff');
    expect(all).toMatch(/updated: hn-root-new.img is now hn-root.img/);
    const u = r.markers.filter((m) => m.line.startsWith('HN-USERSPACE')).at(-1)?.line ?? '';
    expect(u, all.slice(-3000)).toContain(`uname=${B.kernelVersion} image=B`);
    expect(u).toMatch(/ hostpart=\/dev\/vda2,btrfs,rw/);
    expect(all).toContain('HN-DATA0 ok precious=gold');
    expect(all).toMatch(/HN-FILES data hn-boot.log hn-root-old.img hn-root.img/);
    expect(all).toContain('HN-SHUTDOWN host partition unmounted cleanly');
    // eslint-disable-next-line no-console
    console.log(`btrfs: update boot reached userspace at ${r.markers.filter((m) => m.line.startsWith('HN-USERSPACE')).at(-1)?.atMs} ms`);
    const part = join(work, 'hostpart.btrfs');
    await run({ file: 'dd', args: [`if=${disk}`, `of=${part}`, 'bs=1M', `skip=${hostpartOffset}`, 'iflag=skip_bytes', 'conv=sparse', 'status=none'], timeoutMs: 120_000 });
    await run({ file: 'btrfs', args: ['check', '--readonly', part], timeoutMs: 120_000 });
  });
});
