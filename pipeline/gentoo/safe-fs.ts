// Writing into the image from the host. The image's tree came from a tarball
// and may hold symlinks pointing anywhere on the host (an absolute symlink is
// harmless inside the chroot, not outside it), so every path is walked one
// component at a time and must stay below the root.

import { lstat, mkdir, readlink, realpath, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { join, posix, relative, isAbsolute } from 'node:path';
import { gentooError } from './errors.ts';

function inside(root: string, p: string): boolean {
  const r = relative(root, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

/** Creates the directory `rel` (an image path like /etc/portage/package.use) and returns its host path. */
export async function mkdirInRoot(root: string, rel: string): Promise<string> {
  const realRoot = await realpath(root);
  let cur = realRoot;
  for (const part of posix.normalize(rel).split('/').filter(Boolean)) {
    if (part === '..') throw gentooError('EGENTOO_PATH_ESCAPE', `image path ${rel} contains '..'`);
    const next = join(cur, part);
    let st;
    try {
      st = await lstat(next);
    } catch {
      await mkdir(next);
      cur = next;
      continue;
    }
    if (st.isSymbolicLink()) {
      const target = await realpath(next).catch(() => undefined);
      if (!target || !inside(realRoot, target)) {
        throw gentooError('EGENTOO_PATH_ESCAPE', `${rel}: ${next} is a symlink to ${await readlink(next)}, outside the image; the stage3 is not a normal one`);
      }
      cur = target;
    } else if (st.isDirectory()) {
      cur = next;
    } else {
      throw gentooError('EGENTOO_PATH_ESCAPE', `${rel}: ${next} exists and is not a directory`);
    }
  }
  return cur;
}

/** Writes a regular file at image path `rel`; a symlink already there is replaced, never followed. */
export async function writeInRoot(root: string, rel: string, content: string, mode = 0o644): Promise<string> {
  const dir = await mkdirInRoot(root, posix.dirname(rel));
  const target = join(dir, posix.basename(rel));
  const st = await lstat(target).catch(() => undefined);
  if (st?.isSymbolicLink()) await rm(target);
  if (st?.isDirectory()) throw gentooError('EGENTOO_PATH_ESCAPE', `${rel} is a directory in the image, expected a file`);
  await writeFile(target, content, { mode });
  await chmod(target, mode);
  return target;
}

/** Makes image path `rel` a symlink to `target` (interpreted inside the image). */
export async function symlinkInRoot(root: string, rel: string, target: string): Promise<string> {
  const dir = await mkdirInRoot(root, posix.dirname(rel));
  const link = join(dir, posix.basename(rel));
  const st = await lstat(link).catch(() => undefined);
  if (st?.isDirectory() && !st.isSymbolicLink()) throw gentooError('EGENTOO_PATH_ESCAPE', `${rel} is a directory in the image, expected a symlink`);
  if (st) await rm(link);
  await symlink(target, link);
  return link;
}

/** Removes a file at image path `rel` if present (never follows a symlink out of the image). */
export async function removeInRoot(root: string, rel: string): Promise<void> {
  const dir = await mkdirInRoot(root, posix.dirname(rel));
  await rm(join(dir, posix.basename(rel)), { force: true, recursive: true });
}

/** Host path of an existing image path, resolved safely (for reading). */
export async function resolveInRoot(root: string, rel: string): Promise<string> {
  const dir = await mkdirInRoot(root, posix.dirname(rel));
  return join(dir, posix.basename(rel));
}
