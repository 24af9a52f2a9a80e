// The images of the rollback matrix (test/boot/rollback.qemu.test.ts and
// `bin/hnforge-bench boot`): a good old image A, a good new image B, and broken
// variants of B made by editing copies of it offline (debugfs), so one build
// serves every scenario. Each variant breaks one layer of the boot:
//   panic       the kernel panics (rdinit names no file: no init, no root)
//   noroot      the initramfs cannot find its host partition (a label nobody has)
//   hang        userspace hangs before the health check (the watchdog must fire)
//   healthfail  the health check fails (it declares docker, which the image lacks)

import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_KERNEL_ARGS, IMAGE_PATHS } from '../../pipeline/boot/contract.ts';
import { grubKernelArgsFile, imageKernelArgs } from '../../pipeline/boot/grub.ts';
import { writeSidecar } from '../../pipeline/boot/sidecar.ts';
import { bootCmd } from '../../pipeline/seam/boot-commands.ts';
import { run } from '../../pipeline/seam/run.ts';
import { healthConfText } from '../../stages/node-tools.ts';
import { buildTestImage, type TestImage } from './fixtures.ts';
import { HN_BOOT_SH } from './sh-harness.ts';

/** The test images' trial policy: the default budget; a watchdog short enough for a busybox userspace. */
export const TRIAL = { budget: 2, timeoutSec: 20 };

export const BROKEN = ['panic', 'noroot', 'hang', 'healthfail'] as const;
export type Broken = (typeof BROKEN)[number];

/** What the revert's logged reason says for each broken variant. */
export const REASON: Record<Broken, RegExp> = {
  panic: /trial budget of 2 boots is spent without a confirmation; no trial boot reached the initramfs/,
  noroot: /trial budget of 2 boots is spent without a confirmation; no trial boot reached the initramfs/,
  hang: /trial budget of 2 boots is spent without a confirmation; last report: .*trial boot 2 of 2 .*initramfs reached; nothing after it/,
  healthfail: /trial budget of 2 boots is spent without a confirmation; last report: hn-health: FAIL on trial boot 2: docker: docker is not installed/,
};

export interface Candidate {
  image: string;
  sidecar: string;
}

export interface RollbackImages {
  A: TestImage;
  B: TestImage;
  good: Candidate;
  broken: Record<Broken, Candidate>;
}

const args = (extra: string[] = []) => imageKernelArgs({ kernelArgs: [...DEFAULT_KERNEL_ARGS, ...extra], trial: TRIAL });

async function edit(image: string, work: string, files: Record<string, string>) {
  for (const [target, content] of Object.entries(files)) {
    const host = join(work, `edit-${target.replace(/\//g, '_')}-${Date.now()}`);
    await writeFile(host, content);
    await run(bootCmd.debugfs(image, `rm ${target}`, true), { capture: true, okExitCodes: [0, 1] });
    await run(bootCmd.debugfs(image, `write ${host} ${target}`, true), { capture: true });
  }
}

async function candidate(from: string, name: string, work: string, files: Record<string, string>): Promise<Candidate> {
  const image = join(work, `B-${name}.img`);
  await copyFile(from, image);
  await edit(image, work, files);
  const sidecar = `${image}.sha256`;
  await writeSidecar(image, sidecar, `B-${name}`);
  return { image, sidecar };
}

export async function buildRollbackImages(work: string): Promise<RollbackImages> {
  const A = await buildTestImage({ workDir: work, id: 'A', flavour: 'cloud-amd64', out: join(work, 'A.img'), kernelArgs: args() });
  const B = await buildTestImage({ workDir: work, id: 'B', flavour: 'cloud-amd64', out: join(work, 'B.img'), kernelArgs: args() });
  const good = { image: B.path, sidecar: `${B.path}.sha256` };
  await writeSidecar(B.path, good.sidecar, 'B');
  const kargs = IMAGE_PATHS.grubKernelArgs;
  const broken = {
    panic: await candidate(B.path, 'panic', work, { [kargs]: grubKernelArgsFile(args(['rdinit=/nonexistent'])) }),
    noroot: await candidate(B.path, 'noroot', work, { [kargs]: grubKernelArgsFile(args(['raw_loop_root_host_partition=LABEL=nowhere', 'hn.hostpart_timeout=2'])) }),
    hang: await candidate(B.path, 'hang', work, { [kargs]: grubKernelArgsFile(args(['hn.test.userspace=hang'])) }),
    healthfail: await candidate(B.path, 'healthfail', work, { [IMAGE_PATHS.healthConf]: healthConfText({ checks: ['hostpart', 'data0', 'docker'], waitSec: 0 }) }),
  };
  return { A, B, good, broken };
}

/**
 * The host partition's files right after the initramfs promoted `c` over A
 * (update steps 1-6 and 3-4 done): hn-root.img = c, hn-root-old.img = A, and
 * hn-trial.cfg / hn-trial.log as hn-boot.sh's own hn_trial_start writes them.
 * A scenario that starts here skips the promotion boot (the good-image test
 * boots a real promotion). Returns debugfs destination -> host file.
 */
export async function promotedFiles(work: string, images: RollbackImages, c: Candidate, name: string): Promise<Record<string, string>> {
  const dir = await mkdtemp(join(work, `promoted-${name}-`));
  await copyFile(c.sidecar, join(dir, 'hn-root-new.img.sha256'));
  await run({
    file: 'sh',
    args: ['-c', `. '${HN_BOOT_SH}'; HN_HP='${dir}'; HN_TRIAL_BUDGET=${TRIAL.budget}; hn_trial_start`],
    timeoutMs: 20_000,
  });
  await rm(join(dir, 'hn-root-new.img.sha256'));
  return {
    '/hn-root.img': c.image,
    '/hn-root-old.img': images.A.path,
    '/hn-trial.cfg': join(dir, 'hn-trial.cfg'),
    '/hn-trial.log': join(dir, 'hn-trial.log'),
  };
}
