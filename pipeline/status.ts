// `hnforge status --disk PATH`: what a node's host partition says (images and
// their versions, the trial, the last revert and its reason), read offline
// from a disk or a disk image file. The report is boot/hn-status's, the same
// POSIX-sh file the node runs as hn-status: one implementation for both.
//
// Nothing is written: the host partition is attached to a read-only loop
// device at its byte range and mounted read-only without replaying its
// journal (ext4 noload, btrfs nologreplay); GRUB's environment block (the
// trial count) is read from EFI-BOOT with mtools. Everything acquired is
// released whatever happens (ResourceStack).

import { mkdir, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EFI_FILES } from './boot/contract.ts';
import { HnError, usageError } from './errors.ts';
import { listPartitions } from './provision.ts';
import { bootCmd } from './seam/boot-commands.ts';
import type { CatalogueEntry } from './seam/catalogue.ts';
import { cmd } from './seam/command.ts';
import { ResourceStack } from './seam/resources.ts';
import { run } from './seam/run.ts';
import { mountOn } from './seam/system.ts';

const SECTOR = 512;

/** Every command `hnforge status` runs (its host tools). */
export const STATUS_COMMANDS: readonly CatalogueEntry[] = [
  bootCmd.partxList, bootCmd.losetupReadOnlyRange, cmd.losetupDetach, cmd.mount, cmd.umount, bootCmd.mtype, bootCmd.hnStatus, bootCmd.debugfs,
];

export interface StatusOptions {
  disk: string;
  json?: boolean;
  repoDir: string;
}

/** ext or btrfs, from the superblock magic at the partition's offset. */
async function fsTypeAt(disk: string, offset: number): Promise<'ext4' | 'btrfs' | undefined> {
  const fh = await open(disk, 'r');
  try {
    const ext = Buffer.alloc(2);
    await fh.read(ext, 0, 2, offset + 1080);
    if (ext.readUInt16LE(0) === 0xef53) return 'ext4';
    const btrfs = Buffer.alloc(8);
    await fh.read(btrfs, 0, 8, offset + 65600);
    if (btrfs.toString('latin1') === '_BHRfS_M') return 'btrfs';
    return undefined;
  } finally {
    await fh.close();
  }
}

/** hn-status's output (text, or its JSON with the disk added) for the host partition of `disk`. */
export async function diskStatus(o: StatusOptions): Promise<string> {
  const st = await stat(o.disk).catch(() => undefined);
  if (!st || !(st.isFile() || st.isBlockDevice())) throw usageError(`--disk ${o.disk}: no such disk or disk image file`);
  const parts = await listPartitions(o.disk);
  const efi = parts.find((p) => p.nr === 1);
  const hostpart = parts.find((p) => p.nr === 2);
  if (!efi || !hostpart) throw usageError(`--disk ${o.disk}: no GPT with EFI-BOOT (1) and hostpart (2): not a disk hnforge provision made`);
  const hpOffset = hostpart.startSector * SECTOR;
  const fs = await fsTypeAt(o.disk, hpOffset);
  if (!fs) throw new HnError('EPARTITION', `${o.disk}: partition 2 holds neither ext4 nor btrfs (no host partition)`);

  const stack = new ResourceStack();
  const work = await mkdtemp(join(tmpdir(), 'hn-status-'));
  stack.push(`scratch directory ${work}`, () => rm(work, { recursive: true, force: true }));
  try {
    // GRUB's environment block (absent on disks provisioned before trial boots).
    const grubenv = join(work, 'grubenv');
    const env = await run(bootCmd.mtype(o.disk, efi.startSector * SECTOR, EFI_FILES.grubEnv), { capture: true, okExitCodes: [0, 1] });
    if (env.exitCode === 0) await writeFile(grubenv, env.stdout);

    const { stdout } = await run(bootCmd.losetupReadOnlyRange(o.disk, hpOffset, hostpart.sectors * SECTOR), { capture: true });
    const device = stdout.trim();
    stack.push(`loop device ${device}`, async () => {
      await run(cmd.losetupDetach(device));
    });
    const mnt = join(work, 'hostpart');
    await mkdir(mnt);
    await mountOn(stack, device, mnt, { type: fs, options: ['ro', fs === 'ext4' ? 'noload' : 'nologreplay'] });

    const args = ['--hostpart', mnt, '--grubenv', grubenv, ...(o.json ? ['--json'] : [])];
    const out = await run(bootCmd.hnStatus(join(o.repoDir, 'boot/hn-status'), args), { capture: true });
    if (!o.json) return out.stdout.replace(`host partition ${mnt}`, `host partition of ${o.disk} (${fs}, partition 2)`);
    const parsed = JSON.parse(out.stdout) as Record<string, unknown>;
    return JSON.stringify({ disk: o.disk, ...parsed, hostpart: `${fs}, partition 2` }, null, 2) + '\n';
  } finally {
    const { failed } = await stack.unwind();
    if (failed.length) {
      // eslint-disable-next-line no-unsafe-finally
      throw new HnError('ECLEANUP', `releasing what status held failed: ${failed.map((f) => `${f.what}: ${f.error}`).join('; ')}`);
    }
  }
}
