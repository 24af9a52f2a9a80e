// Tear down and seal: discard free blocks (so the file stays sparse), unmount,
// detach, and check the filesystem offline. Only a clean check lets the image
// go on to be published.

import { need } from '../pipeline/context.ts';
import { cmd, formatCommand } from '../pipeline/seam/command.ts';
import type { StageDef } from '../pipeline/stage.ts';
import { join } from 'node:path';

export const seal: StageDef = {
  name: 'seal',
  needs: ['root', 'imageHeld'],
  title: 'Seal the image (trim, unmount, fsck)',
  kind: 'finish',
  // umount and detach: it releases what image-mount holds.
  commands: [cmd.fstrim, cmd.umount, cmd.losetupDetach, cmd.e2fsck, cmd.btrfsCheck],
  bases: ['debian', 'gentoo'],
  needsRoot: true,
  version: 1,
  plan: (ctx) => {
    const image = ctx.paths.workImage;
    return [formatCommand(cmd.fstrim(ctx.paths.root)), 'umount, losetup --detach', formatCommand(ctx.profile.image.filesystem === 'ext4' ? cmd.e2fsck(image) : cmd.btrfsCheck(image))];
  },
  async run(ctx, io) {
    const root = need(ctx, 'root');
    const image = ctx.paths.workImage;
    await io.run(cmd.fstrim(root));
    for (const h of [...(ctx.imageHeld ?? [])].reverse()) await h.release();
    if (ctx.profile.image.filesystem === 'ext4') {
      // 0: clean; 1: errors fixed. Anything else means the image is not fit to publish.
      const { exitCode } = await io.run(cmd.e2fsck(image), { okExitCodes: [1] });
      if (exitCode === 1) io.log('e2fsck fixed errors (see above); the image was repaired before publishing');
    } else {
      await io.run(cmd.btrfsCheck(image));
    }
    return { root: undefined, loopDevice: undefined, imageHeld: [] };
  },
};
