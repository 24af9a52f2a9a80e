// gentoo-binds / gentoo-unbind: the host's distfiles, binary-package and
// binhost-download caches and this repository's portage-overlay/ (read-only)
// bind-mounted into the image while emerge and genkernel run, so a second
// build downloads nothing. gentoo-unbind releases them before the scrub (which empties those
// directories and must never reach through to the host cache).

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { need, type BuildContext } from '../pipeline/context.ts';
import { cmd, formatCommand } from '../pipeline/seam/command.ts';
import type { Held } from '../pipeline/seam/resources.ts';
import { imageFs } from '../pipeline/seam/image-fs.ts';
import { mountOn } from '../pipeline/seam/system.ts';
import type { StageDef } from '../pipeline/stage.ts';
import { BINHOST_CACHE, DISTDIR, OVERLAY_LOCATION, PKGDIR } from '../pipeline/gentoo/portage-config.ts';
import { gentooCachePaths } from '../pipeline/gentoo/stage3.ts';
import { assembleOverlay, NODE_FILES } from '../pipeline/gentoo/overlay.ts';

/** The overlay as bound into the image: portage-overlay/ plus the node package's files (see overlay.ts). */
export function assembledOverlayDir(ctx: BuildContext): string {
  return join(ctx.paths.gentooWork, 'overlay');
}

export function gentooBindMounts(ctx: BuildContext) {
  const c = gentooCachePaths(ctx.cacheDir);
  return [
    { source: c.distfiles, image: DISTDIR, readOnly: false },
    { source: c.binpkgs, image: PKGDIR, readOnly: false },
    { source: c.binhost, image: BINHOST_CACHE, readOnly: false },
    { source: c.genkernel, image: '/var/cache/genkernel', readOnly: false },
    { source: assembledOverlayDir(ctx), image: OVERLAY_LOCATION, readOnly: true },
  ];
}

export const gentooBinds: StageDef = {
  name: 'gentoo-binds',
  needs: ['root'],
  provides: ['gentooHeld'],
  title: 'Bind the package caches and the overlay into the image',
  kind: 'attach',
  bases: ['gentoo'],
  needsRoot: true,
  version: 2,
  commands: [cmd.mount, cmd.umount],
  plan: (ctx) => [
    `assemble ${assembledOverlayDir(ctx)} from portage-overlay/ and ${NODE_FILES.map((f) => f.source).join(', ')}`,
    ...gentooBindMounts(ctx).map((b) =>
      formatCommand(cmd.mount(b.source, join(ctx.buildDir, 'root', b.image), { bind: true, options: b.readOnly ? ['ro'] : undefined })),
    ),
  ],
  async run(ctx, io) {
    const image = imageFs(need(ctx, 'root'));
    const held: Held[] = [];
    const overlay = await assembleOverlay(ctx.repoDir, assembledOverlayDir(ctx));
    io.log(`overlay assembled; node package files: ${overlay.included.join(', ')}${overlay.missing.length ? `; not in the repository yet: ${overlay.missing.join(', ')}` : ''}`);
    for (const b of gentooBindMounts(ctx)) {
      if (!b.readOnly) await mkdir(b.source, { recursive: true });
      // Resolved inside the image: a target that is a link to / must not bind over the host's root.
      const target = await image.mkdirp(b.image);
      held.push(await mountOn(ctx.stack, b.source, target, { bind: true, options: b.readOnly ? ['ro'] : undefined }, { signal: io.signal }));
      io.log(`bound ${b.source} at ${b.image}${b.readOnly ? ' (read-only)' : ''}`);
    }
    return { gentooHeld: held };
  },
};

export const gentooUnbind: StageDef = {
  name: 'gentoo-unbind',
  needs: ['gentooHeld'],
  title: 'Release the package caches and the overlay',
  kind: 'attach',
  bases: ['gentoo'],
  needsRoot: true,
  version: 1,
  commands: [cmd.umount],
  plan: (ctx) => gentooBindMounts(ctx).reverse().map((b) => formatCommand(cmd.umount(join(ctx.buildDir, 'root', b.image)))),
  async run(ctx) {
    for (const h of [...(ctx.gentooHeld ?? [])].reverse()) await h.release();
    return { gentooHeld: [] };
  },
};
