// A sparse image file of the profile's size with the profile's filesystem.
// Sparse: a 15 GiB image costs only the blocks written into it.

import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { cmd, formatCommand } from '../pipeline/seam/command.ts';
import type { StageDef } from '../pipeline/stage.ts';
import { need } from '../pipeline/context.ts';

const GiB = 1024 ** 3;

export const imageCreate: StageDef = {
  name: 'image-create',
  title: 'Create the sparse image file',
  kind: 'mutate',
  bases: ['debian', 'gentoo'],
  needsRoot: false,
  version: 1,
  commands: [cmd.truncate, cmd.mkfs],
  inputs: (ctx) => ctx.profile.image,
  plan(ctx) {
    const image = ctx.paths.workImage;
    const { sizeGiB, filesystem, label } = ctx.profile.image;
    return [formatCommand(cmd.truncate(image, sizeGiB * GiB)), formatCommand(cmd.mkfs(filesystem, image, label))];
  },
  async run(ctx, io) {
    const image = ctx.paths.workImage;
    const { sizeGiB, filesystem, label } = ctx.profile.image;
    await mkdir(ctx.buildDir, { recursive: true });
    await rm(image, { force: true });
    await io.run(cmd.truncate(image, sizeGiB * GiB));
    await io.run(cmd.mkfs(filesystem, image, label));
  },
};
