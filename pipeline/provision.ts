// `hnforge provision`: the seed's installation steps 1-9 on a block device or a
// disk image file. GPT; partition 1: FAT32 labelled EFI-BOOT holding GRUB
// (x86_64-efi, standalone, as EFI/BOOT/BOOTX64.EFI) and grub/grub.cfg;
// partition 2: the rest, labelled hostpart (btrfs or ext4), holding
// hn-root.img and data/.
//
// On a disk image file nothing is loop-mounted: filesystems are written at
// their byte offsets (mkfs.vfat --offset, mtools FILE@@OFFSET, mkfs.ext4 -E
// offset= -d DIR; btrfs via a partition-sized file copied in with dd). On a
// block device the partition nodes are used after partx -u.

import { link, lstat, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { HnError, usageError } from './errors.ts';
import { bootCmd } from './seam/boot-commands.ts';
import { cmd, type Command } from './seam/command.ts';
import { run as seamRun, type RunOptions, type RunResult } from './seam/run.ts';
import { grubConfig, grubEmbeddedConfig, grubEnvBlock, type GrubConfigOptions } from './boot/grub.ts';
import { EFI_FILES } from './boot/contract.ts';

export type Runner = (command: Command, opts?: Omit<RunOptions, 'signal'>) => Promise<RunResult>;

/** Every command provisioning may run (its host tools, installed before it starts). */
export const PROVISION_COMMANDS = [
  cmd.truncate, cmd.copySparse, cmd.sync,
  bootCmd.partxList, bootCmd.partxUpdate, bootCmd.wipefsProbe, bootCmd.wipefsAll, bootCmd.blockdevSize,
  bootCmd.sgdiskLayout, bootCmd.mkfsVfat, bootCmd.mkfsVfatAt, bootCmd.grubMkstandalone, bootCmd.mmd, bootCmd.mcopy,
  bootCmd.mkfsExt4Device, bootCmd.mkfsExt4At, bootCmd.mkfsBtrfsImage, bootCmd.ddInto,
];

export interface ProvisionOptions {
  /** Block device (/dev/sdX, /dev/nvme0n1) or disk image file (created if missing and sizeBytes is given). */
  disk: string;
  /** The image to install as hn-root.img. */
  image: string;
  hostpartFs?: 'btrfs' | 'ext4';
  /** Go ahead without asking (the CLI asks otherwise; this function refuses). */
  yes?: boolean;
  /** Allow destroying a disk that already has partitions or filesystems. */
  force?: boolean;
  /** Only work out and return the plan. */
  dryRun?: boolean;
  /** Size of a disk image file to create (ignored for an existing disk). */
  sizeBytes?: number;
  efiMiB?: number;
  grub?: GrubConfigOptions;
  /** Extra files for the host partition (relative path -> content), e.g. data/README. */
  hostpartFiles?: Record<string, string>;
  /** Extra files for the host partition copied from existing files (relative path -> source path), e.g. an hn-root-new.img. */
  hostpartCopies?: Record<string, string>;
  /** Scratch directory (default: next to the image, so hn-root.img can be a hard link, not a copy). */
  workDir?: string;
  run?: Runner;
  log?: (line: string) => void;
}

export interface PartitionInfo {
  nr: number;
  startSector: number;
  sectors: number;
}

export interface ProvisionPlan {
  disk: string;
  blockDevice: boolean;
  sizeBytes: number;
  /** Signatures found (partition tables, filesystems): what will be destroyed. */
  existing: string[];
  existingPartitions: PartitionInfo[];
  destroys: string[];
  steps: string[];
}

export interface ProvisionResult extends ProvisionPlan {
  performed: boolean;
  efi?: PartitionInfo;
  hostpart?: PartitionInfo;
  /** e2fsprogs/mtools address of the host partition for offline tools ("disk?offset=N" / "disk@@N"). */
  hostpartOffsetBytes?: number;
  efiOffsetBytes?: number;
  durationMs?: number;
}

const SECTOR = 512;

async function isBlockDevice(path: string) {
  return (await stat(path)).isBlockDevice();
}

export async function listPartitions(disk: string, run: Runner = seamRun): Promise<PartitionInfo[]> {
  const { stdout, exitCode } = await run(bootCmd.partxList(disk), { capture: true, okExitCodes: [0, 1] });
  if (exitCode !== 0) return [];
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((f) => f.length === 3 && f.every((n) => Number.isFinite(n)))
    .map(([nr, start, sectors]) => ({ nr: nr!, startSector: start!, sectors: sectors! }));
}

async function signatures(disk: string, run: Runner): Promise<string[]> {
  const { stdout } = await run(bootCmd.wipefsProbe(disk), { capture: true });
  const parsed = JSON.parse(stdout || '{"signatures":[]}') as { signatures: { type: string; offset: string; label?: string | null }[] };
  return parsed.signatures.map((s) => `${s.type} at ${s.offset}${s.label ? ` (label ${s.label})` : ''}`);
}

async function mountedUnder(disk: string): Promise<string[]> {
  const mounts = await readFile('/proc/mounts', 'utf8');
  return mounts
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[0] && (f[0] === disk || (f[0].startsWith(disk) && /^\d|^p\d/.test(f[0].slice(disk.length)))))
    .map((f) => `${f[0]} on ${f[1]}`);
}

export async function planProvision(opts: ProvisionOptions): Promise<ProvisionPlan> {
  const run = opts.run ?? seamRun;
  const fs = opts.hostpartFs ?? 'btrfs';
  const efiMiB = opts.efiMiB ?? 128;
  const imageStat = await stat(opts.image).catch(() => undefined);
  if (!imageStat?.isFile()) throw usageError(`--image ${opts.image}: no such image file`);
  const diskExists = await lstat(opts.disk).then(() => true, () => false);
  let blockDevice = false;
  let sizeBytes = opts.sizeBytes ?? 0;
  let existing: string[] = [];
  let existingPartitions: PartitionInfo[] = [];
  if (diskExists) {
    blockDevice = await isBlockDevice(opts.disk);
    if (blockDevice) {
      const { stdout } = await run(bootCmd.blockdevSize(opts.disk), { capture: true });
      sizeBytes = Number(stdout.trim());
    } else {
      sizeBytes = (await stat(opts.disk)).size;
    }
    existing = await signatures(opts.disk, run);
    existingPartitions = await listPartitions(opts.disk, run);
  } else if (!opts.sizeBytes) {
    throw usageError(`--disk ${opts.disk} does not exist (give a size to create a disk image file)`);
  }
  const needed = (efiMiB + 2) * 1024 * 1024 + imageStat.size * 1.05 + 64 * 1024 * 1024;
  if (sizeBytes < needed) {
    throw new HnError('EDISKSMALL', `${opts.disk} has ${sizeBytes} bytes; ${Math.ceil(needed)} are needed for EFI-BOOT, ${basename(opts.image)} and the filesystem`);
  }
  const destroys = [
    ...existingPartitions.map((p) => `partition ${p.nr}: ${(p.sectors * SECTOR / 2 ** 20).toFixed(0)} MiB at sector ${p.startSector}`),
    ...existing.map((s) => `signature ${s}`),
  ];
  const steps = [
    `sgdisk --clear: GPT, 1 = ${efiMiB} MiB EFI system partition "EFI-BOOT", 2 = rest "hostpart"`,
    'mkfs.vfat -F 32 -n EFI-BOOT; EFI/BOOT/BOOTX64.EFI (grub-mkstandalone x86_64-efi); grub/grub.cfg; grub/grubenv (the trial boot count)',
    `mkfs.${fs} -L hostpart with hn-root.img (${basename(opts.image)}, ${imageStat.size} bytes) and data/`,
  ];
  return { disk: opts.disk, blockDevice, sizeBytes, existing, existingPartitions, destroys, steps };
}

/** Human-readable plan (what the CLI prints before asking). */
export function formatPlan(plan: ProvisionPlan): string {
  return [
    `provision ${plan.disk} (${plan.blockDevice ? 'block device' : 'disk image file'}, ${(plan.sizeBytes / 2 ** 30).toFixed(2)} GiB)`,
    plan.destroys.length ? 'This DESTROYS:' : 'Nothing on it to destroy (no partitions, no signatures).',
    ...plan.destroys.map((d) => `  - ${d}`),
    'Then:',
    ...plan.steps.map((s) => `  - ${s}`),
  ].join('\n');
}

export async function provision(opts: ProvisionOptions): Promise<ProvisionResult> {
  const t0 = Date.now();
  const run = opts.run ?? seamRun;
  const log = opts.log ?? (() => {});
  const fs = opts.hostpartFs ?? 'btrfs';
  const efiMiB = opts.efiMiB ?? 128;
  const plan = await planProvision(opts);
  log(formatPlan(plan));
  if (opts.dryRun) return { ...plan, performed: false };

  const busy = await mountedUnder(opts.disk);
  if (busy.length) throw new HnError('EDISKBUSY', `${opts.disk} is in use (${busy.join(', ')}); unmount it first (--force does not override this)`);
  if ((plan.existingPartitions.length || plan.existing.length) && !opts.force) {
    throw new HnError('EDISKNOTEMPTY', `${opts.disk} has partitions or filesystems (listed above); add --force to destroy them`, { details: plan.destroys });
  }
  if (!opts.yes) throw new HnError('ECONFIRM', `provisioning destroys everything on ${opts.disk}; add --yes to go ahead`, { details: plan.destroys });

  if (!plan.blockDevice && !(await lstat(opts.disk).then(() => true, () => false))) {
    await run(cmd.truncate(opts.disk, plan.sizeBytes));
  }
  const workDir = await mkdtemp(join(opts.workDir ?? dirname(opts.image), '.hn-provision-'));
  try {
    await run(bootCmd.wipefsAll(opts.disk));
    await run(bootCmd.sgdiskLayout(opts.disk, efiMiB));
    if (plan.blockDevice) await run(bootCmd.partxUpdate(opts.disk), { okExitCodes: [0, 1] });
    const parts = await listPartitions(opts.disk, run);
    const efi = parts.find((p) => p.nr === 1);
    const hostpart = parts.find((p) => p.nr === 2);
    if (!efi || !hostpart) throw new HnError('EPARTITION', `sgdisk did not leave two partitions on ${opts.disk}`);
    const efiOff = efi.startSector * SECTOR;
    const hpOff = hostpart.startSector * SECTOR;
    const partNode = (nr: number) => `${opts.disk}${/\d$/.test(opts.disk) ? 'p' : ''}${nr}`;

    // EFI-BOOT: FAT32, GRUB standalone, grub.cfg.
    const efiTarget = plan.blockDevice ? partNode(1) : opts.disk;
    const efiAddr = plan.blockDevice ? 0 : efiOff;
    if (plan.blockDevice) await run(bootCmd.mkfsVfat(efiTarget, 'EFI-BOOT'));
    else await run(bootCmd.mkfsVfatAt(opts.disk, efi.startSector, Math.floor((efi.sectors * SECTOR) / 1024), 'EFI-BOOT'));
    const embedded = join(workDir, 'grub-embedded.cfg');
    await writeFile(embedded, grubEmbeddedConfig());
    const bootx64 = join(workDir, 'BOOTX64.EFI');
    await run(bootCmd.grubMkstandalone(bootx64, embedded));
    const cfg = join(workDir, 'grub.cfg');
    await writeFile(cfg, grubConfig(opts.grub));
    await run(bootCmd.mmd(efiTarget, efiAddr, ['EFI', 'EFI/BOOT', 'grub']));
    await run(bootCmd.mcopy(efiTarget, efiAddr, bootx64, 'EFI/BOOT/BOOTX64.EFI'));
    await run(bootCmd.mcopy(efiTarget, efiAddr, cfg, EFI_FILES.grubConfig));
    // The trial boot count (GRUB's save_env rewrites these 1024 bytes in place; nothing else writes them).
    const env = join(workDir, 'grubenv');
    await writeFile(env, grubEnvBlock());
    await run(bootCmd.mcopy(efiTarget, efiAddr, env, EFI_FILES.grubEnv));

    // hostpart: hn-root.img (a hard link when possible: no 15 GiB copy) and data/.
    const tree = join(workDir, 'hostpart');
    await mkdir(join(tree, 'data'), { recursive: true });
    // mkfs.ext4 -d copies a hard-linked file correctly; mkfs.btrfs --rootdir
    // keeps the source's link count (2) for a file it stores once, and
    // `btrfs check` then reports "link count wrong": copy for btrfs.
    const place = async (from: string, to: string) => {
      if (fs === 'ext4') {
        try {
          await link(from, to);
          return;
        } catch {
          /* another filesystem: copy */
        }
      }
      await run(cmd.copySparse(from, to));
    };
    await place(opts.image, join(tree, 'hn-root.img'));
    for (const [rel, from] of Object.entries(opts.hostpartCopies ?? {})) {
      await mkdir(dirname(join(tree, rel)), { recursive: true });
      await place(from, join(tree, rel));
    }
    for (const [rel, content] of Object.entries(opts.hostpartFiles ?? {})) {
      await mkdir(dirname(join(tree, rel)), { recursive: true });
      await writeFile(join(tree, rel), content);
    }
    const hpKiB = Math.floor((hostpart.sectors * SECTOR) / 1024);
    if (plan.blockDevice) {
      if (fs === 'ext4') await run(bootCmd.mkfsExt4Device(partNode(2), 'hostpart', tree));
      else await run(bootCmd.mkfsBtrfsImage(partNode(2), 'hostpart', tree));
    } else if (fs === 'ext4') {
      await run(bootCmd.mkfsExt4At(opts.disk, hpOff, hpKiB, 'hostpart', tree));
    } else {
      const part = join(workDir, 'hostpart.btrfs');
      await run(cmd.truncate(part, hpKiB * 1024));
      await run(bootCmd.mkfsBtrfsImage(part, 'hostpart', tree));
      await run(bootCmd.ddInto(part, opts.disk, hpOff));
    }
    await run(cmd.sync());
    const durationMs = Date.now() - t0;
    log(`provisioned ${opts.disk} in ${(durationMs / 1000).toFixed(1)} s (hostpart ${fs} at byte ${hpOff})`);
    return { ...plan, performed: true, efi, hostpart, efiOffsetBytes: efiOff, hostpartOffsetBytes: hpOff, durationMs };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
