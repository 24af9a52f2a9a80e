// The overlay the build binds into the image: a copy of portage-overlay/ with
// sys-apps/hnforge-node/files/ filled from this repository (one copy of the
// boot module, not two) and that package's Manifest regenerated.

import { access, copyFile, cp, mkdir, rm, chmod, realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gentooError } from './errors.ts';
import { writeManifest } from './manifest.ts';
import { NODE_FILES, fileNameOf, nodeFilesList } from '../node-files.ts';

export { NODE_FILES };

export const NODE_PACKAGE = 'sys-apps/hnforge-node';

/** The list the node package's ebuild installs from (pipeline/node-files.ts), beside the files. */
export const NODE_FILES_LIST = 'node-files.list';

export async function assembleOverlay(repoDir: string, dest: string): Promise<{ included: string[]; missing: string[] }> {
  await rm(dest, { recursive: true, force: true });
  await mkdir(dest, { recursive: true });
  // realpath: the repository's overlay may itself be reached through a symlink.
  await cp(await realpath(join(repoDir, 'portage-overlay')), dest, { recursive: true });
  const pkg = join(dest, NODE_PACKAGE);
  const files = join(pkg, 'files');
  await mkdir(files, { recursive: true });
  const included: string[] = [];
  for (const f of NODE_FILES) {
    const src = join(repoDir, f.source);
    if (!(await access(src).then(() => true, () => false))) {
      throw gentooError('EGENTOO_PROFILE', `${f.source} is missing from the repository; the node package needs it`);
    }
    await copyFile(src, join(files, fileNameOf(f)));
    await chmod(join(files, fileNameOf(f)), f.mode);
    included.push(f.source);
  }
  await writeFile(join(files, NODE_FILES_LIST), nodeFilesList());
  await writeManifest(pkg);
  return { included, missing: [] };
}
