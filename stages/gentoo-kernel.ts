// gentoo-kernel: genkernel in the chroot with hnforge's linuxrc (genkernel's
// own, with the boot hook inserted at build time), the boot module in the
// initramfs overlay, and a kernel config made of genkernel's generic config
// plus the profile's fragment. Afterwards the saved config is checked against
// the fragment and /boot/kernel and /boot/initramfs point at the results.

import { readFile, access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { bootCmd } from '../pipeline/seam/boot-commands.ts';
import { join } from 'node:path';
import { need } from '../pipeline/context.ts';
import { formatCommand } from '../pipeline/seam/command.ts';
import type { StageDef, StageIO } from '../pipeline/stage.ts';
import type { BuildContext } from '../pipeline/context.ts';
import { IMAGE_WORK_DIR, gentooCmd, type GenkernelOptions } from '../pipeline/gentoo/commands.ts';
import { gentooOf, gentooTmp, kernelFragmentFile, kernelRequiredFile } from '../pipeline/gentoo/context.ts';
import { gentooError } from '../pipeline/gentoo/errors.ts';
import {
  BOOT_MODULE_PATH, GENKERNEL_BASE_CONFIGS, GENKERNEL_LINUXRC, LINUXRC_ANCHOR, SHUTDOWN_PATH, checkKernelOptions, findKernelOutputs, mergeKernelConfig, parseRequiredOptions,
  patchLinuxrc, requiredWithFilesystems, type RequiredOption,
} from '../pipeline/gentoo/kernel.ts';
import { imageFs } from '../pipeline/seam/image-fs.ts';

export function genkernelOptions(ctx: BuildContext): GenkernelOptions {
  const makeopts = gentooOf(ctx).buildOnlyMakeConf.MAKEOPTS;
  return {
    kernelConfig: `${IMAGE_WORK_DIR}/kernel.config`,
    linuxrc: `${IMAGE_WORK_DIR}/linuxrc`,
    initramfsOverlay: `${IMAGE_WORK_DIR}/initramfs-overlay`,
    filesystems: ctx.profile.boot.hostpartFilesystems,
    makeopts,
  };
}

/** Files from this repository that go into the initramfs (repo path -> initramfs path). */
export function overlayFiles(ctx: BuildContext): Record<string, string> {
  return {
    [join(ctx.repoDir, 'boot/hn-boot.sh')]: BOOT_MODULE_PATH,
    [join(ctx.repoDir, 'boot/shutdown')]: SHUTDOWN_PATH,
  };
}

async function readInRoot(root: string, rel: string, what: string): Promise<string> {
  try {
    return await imageFs(root).readText(rel);
  } catch {
    throw gentooError('EGENTOO_KERNEL_OUTPUT', `${rel} is missing from the image (${what}); add sys-kernel/genkernel to gentoo.packages`);
  }
}

/**
 * The identity hn_check_identity compares at boot (boot/hn-boot.sh): a hash
 * of the kernel and genkernel's initramfs, appended to the initramfs as a
 * second archive holding /etc/hn-initramfs-id (the kernel unpacks
 * concatenated archives in order) and written to the image's /boot/hn-boot-id.
 */
async function stampIdentity(ctx: BuildContext, root: string, out: { kernel: string; initramfs: string; version: string }, io: StageIO): Promise<string> {
  const image = imageFs(root);
  const initramfs = `/boot/${out.initramfs}`;
  const genkernelArchive = await image.read(initramfs);
  const h = createHash('sha256');
  h.update(await image.read(`/boot/${out.kernel}`));
  h.update(genkernelArchive);
  const id = `${out.version} ${h.digest('hex').slice(0, 24)}`;
  await mkdir(gentooTmp(ctx), { recursive: true });
  const work = await mkdtemp(join(gentooTmp(ctx), 'initramfs-id-'));
  try {
    const stage = join(work, 'stage');
    await mkdir(join(stage, 'etc'), { recursive: true });
    await writeFile(join(stage, 'etc/hn-initramfs-id'), `${id}\n`);
    await io.run(bootCmd.touchTree(stage, 0));
    const cpio = join(work, 'id.cpio');
    await io.run(bootCmd.cpioCreate(stage, cpio, ['etc/hn-initramfs-id']));
    await io.run(bootCmd.gzip(cpio));
    await image.write(initramfs, Buffer.concat([genkernelArchive, await readFile(`${cpio}.gz`)]));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await image.write('/boot/hn-boot-id', `${id}\n`, { mode: 0o644 });
  return id;
}

/** The options the final config must have: the profile's list plus its host-partition filesystems. */
export async function requiredKernelOptions(ctx: BuildContext): Promise<RequiredOption[]> {
  const file = kernelRequiredFile(ctx);
  const text = await readFile(file, 'utf8').catch(() => {
    throw gentooError('EGENTOO_PROFILE', `required kernel options ${file} are missing; fix gentoo.kernelRequiredOptions`);
  });
  return requiredWithFilesystems(parseRequiredOptions(text, file), ctx.profile.boot.hostpartFilesystems);
}

async function prepare(ctx: BuildContext, root: string, io: StageIO) {
  const image = imageFs(root);
  const linuxrc = patchLinuxrc(await readInRoot(root, GENKERNEL_LINUXRC, "genkernel's linuxrc"), { source: GENKERNEL_LINUXRC });
  await image.write(`${IMAGE_WORK_DIR}/linuxrc`, linuxrc, { mode: 0o755 });
  io.log(`patched ${GENKERNEL_LINUXRC} at '${LINUXRC_ANCHOR}' -> ${IMAGE_WORK_DIR}/linuxrc`);

  const overlay = `${IMAGE_WORK_DIR}/initramfs-overlay`;
  for (const [from, to] of Object.entries(overlayFiles(ctx))) {
    if (!(await access(from).then(() => true, () => false))) {
      if (to === BOOT_MODULE_PATH) throw gentooError('EGENTOO_KERNEL_OUTPUT', `${from} is missing; the boot module is part of this repository`);
      io.log(`skipped ${from} (not in this repository)`);
      continue;
    }
    await image.copyIn(from, join(overlay, to));
    io.log(`initramfs overlay: ${to}`);
  }

  const fragment = await readFile(kernelFragmentFile(ctx), 'utf8').catch(() => {
    throw gentooError('EGENTOO_PROFILE', `kernel fragment ${kernelFragmentFile(ctx)} is missing; fix gentoo.kernelConfigFragment`);
  });
  let base: string | undefined;
  for (const candidate of GENKERNEL_BASE_CONFIGS) {
    base = await image.readText(candidate).catch(() => undefined);
    if (base !== undefined) {
      io.log(`kernel config: ${candidate} + ${kernelFragmentFile(ctx)}`);
      break;
    }
  }
  if (base === undefined) {
    throw gentooError('EGENTOO_KERNEL_OUTPUT', `none of ${GENKERNEL_BASE_CONFIGS.join(', ')} is in the image; add sys-kernel/genkernel to gentoo.packages`);
  }
  await image.write(`${IMAGE_WORK_DIR}/kernel.config`, mergeKernelConfig(base, fragment), { mode: 0o644 });
  return fragment;
}

export const gentooKernel: StageDef = {
  name: 'gentoo-kernel',
  needs: ['root'],
  provides: ['gentooKernel'],
  title: 'Build kernel and initramfs with genkernel',
  kind: 'mutate',
  bases: ['gentoo'],
  needsRoot: true,
  version: 2,
  checkpoint: true,
  commands: [gentooCmd.genkernel, bootCmd.touchTree, bootCmd.cpioCreate, bootCmd.gzip],
  inputs: (ctx) => ({ options: genkernelOptions(ctx), anchor: LINUXRC_ANCHOR }),
  files: (ctx) => [kernelFragmentFile(ctx), kernelRequiredFile(ctx), ...Object.keys(overlayFiles(ctx))],
  plan: (ctx) => [
    `patch ${GENKERNEL_LINUXRC} before '${LINUXRC_ANCHOR}' -> ${IMAGE_WORK_DIR}/linuxrc (sources ${BOOT_MODULE_PATH})`,
    `kernel config: ${GENKERNEL_BASE_CONFIGS[0]} (or ${GENKERNEL_BASE_CONFIGS[1]}) + ${kernelFragmentFile(ctx)}`,
    formatCommand(gentooCmd.genkernel(ctx.paths.root, genkernelOptions(ctx))),
    `check /etc/kernels/kernel-config-<KV>: every option of ${kernelRequiredFile(ctx)} (and boot.hostpartFilesystems) present, or fail`,
    'append /etc/hn-initramfs-id (hash of kernel + initramfs) to the initramfs; write /boot/hn-boot-id',
    'ln -s vmlinuz-<KV> /boot/kernel; ln -s initramfs-<KV>.img /boot/initramfs',
  ],
  async run(ctx, io) {
    gentooOf(ctx);
    const root = need(ctx, 'root');
    await mkdir(root, { recursive: true });
    io.progress('preparing linuxrc, overlay and kernel config');
    const required = await requiredKernelOptions(ctx);
    const fragment = await prepare(ctx, root, io);
    io.progress('genkernel all (this takes a while)');
    await io.run(gentooCmd.genkernel(root, genkernelOptions(ctx)), {
      onLine: (line) => {
        const m = /^\s*\*\s+(?:kernel|initramfs):?\s*>>\s*(.+)$/.exec(line);
        if (m) io.progress(`genkernel: ${m[1]!.trim().slice(0, 60)}`);
      },
    });
    const out = await findKernelOutputs(root);
    const saved = await readInRoot(root, `/etc/kernels/kernel-config-${out.version}`, 'the config genkernel saved').catch(() => undefined);
    if (saved === undefined) {
      throw gentooError('EGENTOO_KERNEL_CONFIG', `/etc/kernels/kernel-config-${out.version} is missing, so the required kernel options cannot be checked; genkernel must run with --save-config`);
    }
    const { wrong, absent, missing } = checkKernelOptions(fragment, saved, required);
    for (const a of absent) io.log(`warning: ${a} is unknown to kernel ${out.version} (or its dependencies are off)`);
    const failed = [...missing, ...wrong];
    if (failed.length) {
      for (const f of failed) io.log(`kernel option: ${f}`);
      throw gentooError(
        'EGENTOO_KERNEL_CONFIG',
        `kernel ${out.version} lacks ${failed.length} option(s) after olddefconfig (first: ${failed[0]}); enable them and their dependencies in ${kernelFragmentFile(ctx)}`,
        { details: failed },
      );
    }
    io.log(`kernel ${out.version}: all ${required.length} required options present`);
    const id = await stampIdentity(ctx, root, out, io);
    io.log(`boot identity ${id}: appended to ${out.initramfs}, written to /boot/hn-boot-id`);
    await imageFs(root).symlink(out.kernel, '/boot/kernel');
    await imageFs(root).symlink(out.initramfs, '/boot/initramfs');
    io.log(`/boot/kernel -> ${out.kernel}; /boot/initramfs -> ${out.initramfs}`);
    return { gentooKernel: out };
  },
};
