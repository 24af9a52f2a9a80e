// The file list of an image tree (the manifest's `files`), read from the host
// at the directory the image is mounted on. Like `find -xdev`: nothing is
// followed (lstat, readlink; a symlink is listed with its target, never
// entered, so no path leaves the image), and a directory another filesystem
// is mounted on (proc, sys, dev in a chroot, a bind of a host cache) is listed
// but not entered. Mount points come from /proc/self/mountinfo rather than
// st_dev: a btrfs subvolume has a device number of its own yet is the image.
// Regular files are hashed in parallel (p-limit): a 1.2 GiB tree is mostly
// waiting on reads.

import { createHash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, open, readFile, readdir, readlink, realpath } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import type { ImageFileEntry } from '../publish/manifest-types.ts';

// O_NOFOLLOW: a file swapped for a link after the lstat fails instead of being followed;
// O_NONBLOCK: a FIFO swapped in cannot hang the walk.
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const CHUNK = 1024 * 1024;

/** Mount points strictly below `root` (host paths), from the kernel's table. */
export async function mountPointsBelow(root: string, mountinfo = '/proc/self/mountinfo'): Promise<Set<string>> {
  const text = await readFile(mountinfo, 'utf8');
  // Field 5 is the mount point, with space, tab, newline and backslash as octal escapes.
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const below = new Set<string>();
  for (const line of text.split('\n')) {
    const point = line.split(' ')[4];
    if (point === undefined) continue;
    const path = unescape(point);
    if (path.startsWith(`${root}/`)) below.add(path);
  }
  return below;
}

function typeOf(st: Stats): ImageFileEntry['type'] {
  if (st.isFile()) return 'f';
  if (st.isDirectory()) return 'd';
  if (st.isSymbolicLink()) return 'l';
  if (st.isCharacterDevice()) return 'c';
  if (st.isBlockDevice()) return 'b';
  if (st.isFIFO()) return 'p';
  return 's';
}

async function sha256Of(host: string): Promise<string> {
  const fh = await open(host, READ_FLAGS);
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
    return hash.digest('hex');
  } finally {
    await fh.close();
  }
}

export interface ListOptions {
  /** Files hashed at once (default: 2 per CPU). */
  concurrency?: number;
  /** Told about each mount point listed but not entered. */
  onSkip?: (imagePath: string) => void;
}

/**
 * Walks the tree at host directory `root` (the root itself as "/"): `onEntry`
 * for every entry, links never followed, mount points below listed but not
 * entered. lstat and readdir hold no descriptor, so the walk itself needs no limit.
 */
async function walkTree(root: string, onEntry: (host: string, path: string, st: Stats) => Promise<void> | void, onSkip?: (imagePath: string) => void): Promise<void> {
  const top = await realpath(root);
  const mounts = await mountPointsBelow(top);
  const visit = async (host: string, path: string): Promise<void> => {
    const st = await lstat(host);
    await onEntry(host, path, st);
    if (!st.isDirectory()) return;
    if (mounts.has(host)) {
      onSkip?.(path);
      return;
    }
    const names = await readdir(host);
    await Promise.all(names.map((n) => visit(join(host, n), path === '/' ? `/${n}` : `${path}/${n}`)));
  };
  await visit(top, '/');
}

/** Byte order, not locale order: the same list on every builder. */
const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/**
 * Every entry of the tree at host directory `root` (the root itself as "/"),
 * sorted by path, with sha256 for regular files and the target for symlinks.
 */
export async function listImageFiles(root: string, opts: ListOptions = {}): Promise<ImageFileEntry[]> {
  // Only hashing (which opens files) is limited.
  const limit = pLimit(opts.concurrency ?? availableParallelism() * 2);
  const entries: ImageFileEntry[] = [];
  const pending: Promise<void>[] = [];
  await walkTree(
    root,
    async (host, path, st) => {
      const type = typeOf(st);
      const entry: ImageFileEntry = {
        path,
        type,
        mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
        uid: st.uid,
        gid: st.gid,
        size: type === 'f' || type === 'l' ? st.size : 0,
      };
      entries.push(entry);
      if (type === 'l') entry.target = await readlink(host);
      else if (type === 'f') pending.push(limit(async () => void (entry.sha256 = await sha256Of(host))));
    },
    opts.onSkip,
  );
  await Promise.all(pending);
  return entries.sort(byPath);
}

/** A regular file of an image tree: its path in the image and on the host. */
export interface ImageRegularFile {
  path: string;
  host: string;
  size: number;
}

/**
 * Every regular file of the tree at host directory `root`, walked as
 * listImageFiles walks it (nothing followed, mounts below not entered), sorted
 * by path. Open each with openImageFile: O_NOFOLLOW, so a file swapped for a
 * link after the walk is refused instead of followed out of the image.
 */
export async function listRegularFiles(root: string, opts: Pick<ListOptions, 'onSkip'> = {}): Promise<ImageRegularFile[]> {
  const files: ImageRegularFile[] = [];
  await walkTree(root, (host, path, st) => void (st.isFile() && files.push({ path, host, size: st.size })), opts.onSkip);
  return files.sort(byPath);
}

/** Opens a file listRegularFiles found, for reading, without following a link swapped in meanwhile. */
export const openImageFile = (host: string) => open(host, READ_FLAGS);
