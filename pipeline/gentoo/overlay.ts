// The overlay the build binds into the image: a copy of portage-overlay/ with
// sys-apps/hnforge-node/files/ filled from this repository (one copy of the
// boot module, not two) and that package's Manifest regenerated.

import { access, copyFile, cp, mkdir, rm, chmod, stat, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { gentooError } from './errors.ts';
import { writeManifest } from './manifest.ts';

export const NODE_PACKAGE = 'sys-apps/hnforge-node';

/** Repository files the node package installs (repo path -> name in files/). */
export const NODE_FILES: { from: string; to: string; required: boolean }[] = [
  { from: 'boot/hn-boot.sh', to: 'hn-boot.sh', required: true },
  { from: 'boot/hn-health', to: 'hn-health', required: false },
  { from: 'boot/hn-health.service', to: 'hn-health.service', required: false },
  { from: 'boot/hn-instantiate', to: 'hn-instantiate', required: false },
  { from: 'boot/hn-instantiate.service', to: 'hn-instantiate.service', required: false },
];

export async function assembleOverlay(repoDir: string, dest: string): Promise<{ included: string[]; missing: string[] }> {
  await rm(dest, { recursive: true, force: true });
  await mkdir(dest, { recursive: true });
  // realpath: the repository's overlay may itself be reached through a symlink.
  await cp(await realpath(join(repoDir, 'portage-overlay')), dest, { recursive: true });
  const pkg = join(dest, NODE_PACKAGE);
  const files = join(pkg, 'files');
  await mkdir(files, { recursive: true });
  const included: string[] = [];
  const missing: string[] = [];
  for (const f of NODE_FILES) {
    const src = join(repoDir, f.from);
    if (!(await access(src).then(() => true, () => false))) {
      if (f.required) throw gentooError('EGENTOO_PROFILE', `${f.from} is missing from the repository; the node package needs it`);
      missing.push(f.from);
      continue;
    }
    await copyFile(src, join(files, f.to));
    await chmod(join(files, f.to), (await stat(src)).mode & 0o777);
    included.push(f.from);
  }
  await writeManifest(pkg);
  return { included, missing };
}
