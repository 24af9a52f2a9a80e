// Entering and leaving the image as a chroot: the kernel filesystems a package
// manager needs, a resolv.conf for the build, and a policy that keeps package
// scripts from starting services on the build host.

import { join } from 'node:path';
import { need } from '../pipeline/context.ts';
import { cmd, formatCommand } from '../pipeline/seam/command.ts';
import { imageFs } from '../pipeline/seam/image-fs.ts';
import type { Held } from '../pipeline/seam/resources.ts';
import { endProcessesIn, mountOn } from '../pipeline/seam/system.ts';
import type { StageDef } from '../pipeline/stage.ts';

/** Kernel filesystems mounted into the chroot, in mount order. */
export function chrootMounts(root: string): { source: string; image: string; target: string; opts: Parameters<typeof cmd.mount>[2] }[] {
  const at = (image: string) => ({ image, target: join(root, image) });
  return [
    { source: 'proc', ...at('/proc'), opts: { type: 'proc', options: ['nosuid', 'nodev', 'noexec'] } },
    { source: 'sysfs', ...at('/sys'), opts: { type: 'sysfs', options: ['ro', 'nosuid', 'nodev', 'noexec'] } },
    { source: '/dev', ...at('/dev'), opts: { bind: true } },
    { source: 'devpts', ...at('/dev/pts'), opts: { type: 'devpts', options: ['newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] } },
  ];
}

/** invoke-rc.d asks this before starting a service; 101 means "not allowed" (Debian policy). */
const POLICY_RC_D = '#!/bin/sh\n# hnforge: no service may start while the image is being built\nexit 101\n';

/** Files chroot-enter places in the image for the build only; chroot-leave takes them out. */
export const BUILD_ONLY_FILES = ['usr/sbin/policy-rc.d', 'etc/resolv.conf'];

export const chrootEnter: StageDef = {
  name: 'chroot-enter',
  needs: ['root'],
  provides: ['chrootHeld'],
  commands: [cmd.mount, cmd.umount],
  title: 'Enter the chroot',
  kind: 'attach',
  bases: ['debian', 'gentoo'],
  needsRoot: true,
  version: 2,
  plan: (ctx) => chrootMounts(ctx.paths.root).map((m) => formatCommand(cmd.mount(m.source, m.target, m.opts))),
  async run(ctx, io) {
    const root = need(ctx, 'root');
    const image = imageFs(root);
    const held: Held[] = [];
    for (const m of chrootMounts(root)) {
      // The target as the chroot sees it: an image whose /dev is a link to / must not get a mount over the host's root.
      const target = await image.mkdirp(m.image);
      held.push(await mountOn(ctx.stack, m.source, target, m.opts, { signal: io.signal }));
    }
    // Build-only files. An image's own resolv.conf is kept aside and put back only if it is a
    // symlink (a resolver the distribution manages); a regular file there is the build host's,
    // copied in by the bootstrap, and leaves as an empty file: each node gets its own DNS.
    const resolv = 'etc/resolv.conf';
    const saved = 'etc/.resolv.conf.hnforge';
    if ((await image.lstat(resolv))?.isSymbolicLink()) await image.rename(resolv, saved);
    await image.copyIn('/etc/resolv.conf', resolv).catch(() => image.write(resolv, ''));
    const policy = 'usr/sbin/policy-rc.d';
    await image.write(policy, POLICY_RC_D, { mode: 0o755 });
    held.push(
      ctx.stack.push('build-only files in the image', async () => {
        await image.remove(policy);
        await image.remove(resolv);
        if (await image.exists(saved)) await image.rename(saved, resolv);
        else await image.write(resolv, '');
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
  needs: ['chrootHeld'],
  title: 'Leave the chroot',
  kind: 'attach',
  bases: ['debian', 'gentoo'],
  needsRoot: true,
  version: 1,
  commands: [cmd.umount],
  plan: (ctx) => chrootMounts(ctx.paths.root).reverse().map((m) => formatCommand(cmd.umount(m.target))),
  async run(ctx) {
    for (const h of [...(ctx.chrootHeld ?? [])].reverse()) await h.release();
    return { chrootHeld: [] };
  },
};
