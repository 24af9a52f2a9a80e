// Removes what identifies the build host or would make every node look the
// same. The rules are data (data/scrub.yaml): paths relative to the image
// root, where the last component may hold a '*' wildcard.

import { z } from 'zod';
import { need } from '../pipeline/context.ts';
import { loadDataFile } from '../pipeline/data-files.ts';
import { imageFs } from '../pipeline/seam/image-fs.ts';
import type { StageDef } from '../pipeline/stage.ts';

const SCRUB = loadDataFile('scrub.yaml', z.strictObject({ remove: z.array(z.string().min(1)), truncate: z.array(z.string().min(1)) }));

/** Deleted (files or whole trees). */
export const SCRUB_REMOVE: readonly string[] = SCRUB.remove;

/** Emptied but kept (their presence matters). */
export const SCRUB_TRUNCATE: readonly string[] = SCRUB.truncate;

export async function scrubTree(root: string, log: (line: string) => void): Promise<number> {
  // Resolved inside the image: Debian's /var/run -> /run must lead to the image's /run, not the host's.
  const image = imageFs(root);
  let n = 0;
  for (const pattern of SCRUB_REMOVE) {
    for (const path of await image.glob(pattern)) {
      await image.remove(path);
      log(`removed ${path}`);
      n++;
    }
  }
  for (const pattern of SCRUB_TRUNCATE) {
    for (const path of await image.glob(pattern)) {
      // Only a regular file in its own right: a log name that is a symlink is left alone.
      if ((await image.lstat(path))?.isFile()) await image.truncate(path);
      n++;
    }
  }
  // Empty, not missing: systemd makes a fresh id on each node's first boot without treating
  // it as a factory reset (a missing file or 'uninitialized' would re-apply presets).
  await image.write('etc/machine-id', '');
  return n;
}

export const scrub: StageDef = {
  name: 'scrub',
  needs: ['root'],
  title: 'Scrub host identity',
  kind: 'mutate',
  bases: ['debian', 'gentoo'],
  needsRoot: true,
  version: 3,
  inputs: () => ({ remove: SCRUB_REMOVE, truncate: SCRUB_TRUNCATE }),
  plan: () => [`remove ${SCRUB_REMOVE.length} path patterns, empty ${SCRUB_TRUNCATE.length} logs, empty /etc/machine-id`],
  async run(ctx, io) {
    const n = await scrubTree(need(ctx, 'root'), io.log);
    io.progress(`${n} paths scrubbed`);
  },
};
