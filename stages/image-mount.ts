// Attach the image to a loop device and mount it at <build>/root. Both are
// registered for release the moment they exist; the seal stage releases them
// early, any failure releases them through the unwind.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { need } from '../pipeline/context.ts';
import { cmd, formatCommand } from '../pipeline/seam/command.ts';
import type { Held } from '../pipeline/seam/resources.ts';
import { attachLoop, mountOn } from '../pipeline/seam/system.ts';
import type { StageDef } from '../pipeline/stage.ts';

/** Build-time mount options: barriers off because a crashed build is thrown away, never booted. */
export function buildMountOptions(fs: 'ext4' | 'btrfs'): string[] {
  return fs === 'ext4' ? ['noatime', 'barrier=0', 'commit=60'] : ['noatime', 'nobarrier', 'commit=60'];
}

export const imageMount: StageDef = {
  name: 'image-mount',
  provides: ['root', 'loopDevice', 'imageHeld'],
  title: 'Loop-mount the image',
  kind: 'attach',
  // Detach and umount: the releases it registers (run by the seal, or the unwind).
  commands: [cmd.losetupAttach, cmd.mount, cmd.umount, cmd.losetupDetach],
  bases: ['debian', 'gentoo'],
  needsRoot: true,
  version: 1,
  plan(ctx) {
    const image = ctx.paths.workImage;
    return [formatCommand(cmd.losetupAttach(image)), formatCommand(cmd.mount('$LOOP', ctx.paths.root, { options: buildMountOptions(ctx.profile.image.filesystem) }))];
  },
  async run(ctx, io) {
    const image = ctx.paths.workImage;
    const root = ctx.paths.root;
    await mkdir(root, { recursive: true });
    const loop = await attachLoop(ctx.stack, image, { signal: io.signal });
    io.log(`attached ${image} to ${loop.device}`);
    const mount = await mountOn(ctx.stack, loop.device, root, { type: ctx.profile.image.filesystem, options: buildMountOptions(ctx.profile.image.filesystem) }, { signal: io.signal, recursiveRelease: true });
    return { root, loopDevice: loop.device, imageHeld: [loop.held, mount] };
  },
};
