// The file list of the finished tree, for the report and the published
// manifest (ImageFileEntry). It runs after chroot-leave, so the build-only
// files (policy-rc.d, the host's resolv.conf) are gone and the kernel
// filesystems unmounted, and before seal, while the tree is still mounted.
// Its result is a cached fact: a cached image keeps the list it was made with.

import { need } from '../pipeline/context.ts';
import { listImageFiles } from '../pipeline/seam/image-files.ts';
import type { StageDef } from '../pipeline/stage.ts';

export const fileList: StageDef = {
  name: 'file-list',
  needs: ['root'],
  provides: ['imageFiles'],
  title: "List the image's files (type, mode, owner, size, sha256)",
  // Changes nothing, but reads the image as the stages before it left it: it chains their keys.
  kind: 'mutate',
  bases: ['debian', 'gentoo'],
  needsRoot: true,
  version: 1,
  plan: () => ['walk the mounted tree without following links or entering mounts; sha256 of every regular file'],
  async run(ctx, io) {
    const imageFiles = await listImageFiles(need(ctx, 'root'), { onSkip: (p) => io.log(`not entered (another filesystem is mounted there): ${p}`) });
    const bytes = imageFiles.reduce((n, f) => n + (f.type === 'f' ? f.size : 0), 0);
    io.log(`${imageFiles.length} entries, ${(bytes / 2 ** 20).toFixed(0)} MiB in regular files hashed`);
    io.progress(`${imageFiles.length} entries`);
    return { imageFiles };
  },
};
