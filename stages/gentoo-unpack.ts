// gentoo-unpack: the verified stage3 into the mounted image. The tarball is
// decompressed once; that very file is scanned (tar-stream) and then
// extracted, so what was checked is what is unpacked.

import { readdir, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { need } from '../pipeline/context.ts';
import { formatCommand } from '../pipeline/seam/command.ts';
import type { StageDef } from '../pipeline/stage.ts';
import { gentooCmd } from '../pipeline/gentoo/commands.ts';
import { gentooOf, gentooTmp } from '../pipeline/gentoo/context.ts';
import { gentooError } from '../pipeline/gentoo/errors.ts';
import { scanTar } from '../pipeline/gentoo/tarscan.ts';
import { indexUrl } from '../pipeline/gentoo/index.ts';

export const gentooUnpack: StageDef = {
  name: 'gentoo-unpack',
  needs: ['gentooStage3', 'root'],
  title: 'Unpack the stage3 into the image',
  kind: 'mutate',
  bases: ['gentoo'],
  needsRoot: true,
  version: 1,
  commands: [gentooCmd.xzDecompress, gentooCmd.tarExtract],
  inputs: (ctx) => ({ sha512: ctx.gentooStage3?.sha512 ?? null, variant: gentooOf(ctx).variant }),
  plan(ctx) {
    const s = ctx.gentooStage3;
    const tar = join(gentooTmp(ctx), 'stage3.tar');
    const root = ctx.paths.root;
    return [
      s?.url
        ? `stage3 ${s.url} signed by ${gentooOf(ctx).releaseKeyFingerprint}`
        : `stage3 ${gentooOf(ctx).stage3} from ${indexUrl(gentooOf(ctx).mirrors[0]!, gentooOf(ctx).variant)}, signed by ${gentooOf(ctx).releaseKeyFingerprint} (not resolved in this dry run: ${s?.unresolved ?? 'unknown'})`,
      formatCommand(gentooCmd.xzDecompress(s?.path ?? '<cache>/gentoo/blobs/<sha512>.tar.xz', tar)),
      `scan ${tar}: refuse absolute paths, '..', links escaping the root`,
      formatCommand(gentooCmd.tarExtract(tar, root)),
    ];
  },
  async run(ctx, io) {
    const root = need(ctx, 'root');
    const s = need(ctx, 'gentooStage3');
    if (!s.path || !s.sha512) throw new Error('stage order bug: gentoo-stage3 did not produce a verified tarball');
    const leftovers = (await readdir(root)).filter((n) => n !== 'lost+found');
    if (leftovers.length) {
      throw gentooError('EGENTOO_PROFILE', `the image root is not empty (${leftovers.slice(0, 5).join(', ')}); gentoo-unpack needs a fresh filesystem, rerun the build from image-create`);
    }
    const tmp = gentooTmp(ctx);
    await mkdir(tmp, { recursive: true });
    const tar = join(tmp, 'stage3.tar');
    try {
      io.progress('decompressing the stage3');
      await io.run(gentooCmd.xzDecompress(s.path, tar));
      io.progress('scanning the stage3 for unsafe members');
      const scan = await scanTar(tar, { what: s.fileName ?? 'stage3' });
      io.log(`scan: ${scan.entries} members (${scan.files} files, ${scan.directories} dirs, ${scan.symlinks} symlinks, ${scan.hardlinks} hard links, ${scan.devices} devices): safe`);
      io.progress(`unpacking ${scan.entries} members`);
      await io.run(gentooCmd.tarExtract(tar, root));
    } finally {
      await rm(tar, { force: true });
    }
  },
};
