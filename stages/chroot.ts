// Entering and leaving the image as a chroot: the kernel filesystems a package
// manager needs, a resolv.conf for the build, and a policy that keeps package
// scripts from starting services on the build host.

import { mkdir, rm, writeFile, chmod, copyFile, rename, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { need } from '../pipeline/context.ts';
import { cmd, formatCommand } from '../pipeline/seam/command.ts';
import type { Held } from '../pipeline/seam/resources.ts';
import { endProcessesIn, mountOn } from '../pipeline/seam/system.ts';
import type { StageDef } from '../pipeline/stage.ts';

declare module '../pipeline/context.ts' {
  interface BuildContext {
    chrootHeld?: Held[];
  }
}

/** Kernel filesystems mounted into the chroot, in mount order. */
export function chrootMounts(root: string): { source: string; target: string; opts: Parameters<typeof cmd.mount>[2] }[] {
  return [
    { source: 'proc', target: join(root, 'proc'), opts: { type: 'proc', options: ['nosuid', 'nodev', 'noexec'] } },
    { source: 'sysfs', target: join(root, 'sys'), opts: { type: 'sysfs', options: ['ro', 'nosuid', 'nodev', 'noexec'] } },
    { source: '/dev', target: join(root, 'dev'), opts: { bind: true } },
    { source: 'devpts', target: join(root, 'dev/pts'), opts: { type: 'devpts', options: ['newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] } },
  ];
}

/** invoke-rc.d asks this before starting a service; 101 means "not allowed" (Debian policy). */
const POLICY_RC_D = '#!/bin/sh\n# hnforge: no service may start while the image is being built\nexit 101\n';

/** Files chroot-enter places in the image for the build only; chroot-leave takes them out. */
export const BUILD_ONLY_FILES = ['usr/sbin/policy-rc.d', 'etc/resolv.conf'];

async function exists(path: string) {
  return lstat(path).then(() => true, () => false);
}

export const chrootEnter: StageDef = {
  name: 'chroot-enter',
  commands: [cmd.mount, cmd.umount],
  title: 'Enter the chroot',
  kind: 'attach',
  bases: ['debian', 'gentoo'],
  needsRoot: true,
  version: 1,
  plan: (ctx) => chrootMounts(join(ctx.buildDir, 'root')).map((m) => formatCommand(cmd.mount(m.source, m.target, m.opts))),
  async run(ctx, io) {
    const root = need(ctx, 'root');
    const held: Held[] = [];
    for (const m of chrootMounts(root)) {
      await mkdir(m.target, { recursive: true });
      held.push(await mountOn(ctx.stack, m.source, m.target, m.opts, { signal: io.signal }));
    }
    // Build-only files; an image's own resolv.conf (often a symlink) is kept aside and put back.
    const resolv = join(root, 'etc/resolv.conf');
    const saved = join(root, 'etc/.resolv.conf.hnforge');
    await mkdir(join(root, 'etc'), { recursive: true });
    if (await exists(resolv)) await rename(resolv, saved);
    await copyFile('/etc/resolv.conf', resolv).catch(() => writeFile(resolv, ''));
    const policy = join(root, 'usr/sbin/policy-rc.d');
    await mkdir(join(root, 'usr/sbin'), { recursive: true });
    await writeFile(policy, POLICY_RC_D);
    await chmod(policy, 0o755);
    held.push(
      ctx.stack.push('build-only files in the image', async () => {
        await rm(policy, { force: true });
        await rm(resolv, { force: true });
        if (await exists(saved)) await rename(saved, resolv);
      }),
    );
    // Released first: nothing may still run inside when the mounts go.
    held.push(
      ctx.stack.push(`processes inside ${root}`, async () => {
        const ended = await endProcessesIn(root);
        if (ended.length) io.log(`ended processes left in the chroot: ${ended.join(' ')}`);
      }),
    );
    return { chrootHeld: held };
  },
};

export const chrootLeave: StageDef = {
  name: 'chroot-leave',
  title: 'Leave the chroot',
  kind: 'attach',
  bases: ['debian', 'gentoo'],
  needsRoot: true,
  version: 1,
  commands: [cmd.umount],
  plan: (ctx) => chrootMounts(join(ctx.buildDir, 'root')).reverse().map((m) => formatCommand(cmd.umount(m.target))),
  async run(ctx) {
    for (const h of [...(ctx.chrootHeld ?? [])].reverse()) await h.release();
    return { chrootHeld: [] };
  },
};
