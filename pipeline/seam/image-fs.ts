// Paths inside an image, reached from the host. The image's tree is not the
// host's: Debian ships /var/run -> /run, a package or a stage3 may ship any
// absolute or relative symlink, and a plain join(root, path) lets the host
// follow it out of the image (the scrub truncated the build host's /run/utmp
// that way). Every path here is resolved as the chroot itself would resolve it
// (like openat2 with RESOLVE_IN_ROOT): one component at a time, a symlink's
// target read inside the image (absolute from the image root, `..` stopping
// at it), at most MAX_LINKS links per path. The host path handed to the
// kernel then holds no symlink at all; files are opened with O_NOFOLLOW so a
// link that appears meanwhile fails rather than being followed.
//
// The last component is followed (inside the image) to read, truncate or
// chmod, and acted on itself to remove, rename, replace or make a symlink.

import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, readFile, readdir, readlink, rename, rm, stat, symlink, chmod, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { HnError } from '../errors.ts';

/** Links followed while resolving one path before it counts as a loop (Linux's own limit). */
export const MAX_LINKS = 40;

// O_NONBLOCK: a FIFO planted where a log file was expected must not hang the build.
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const WRITE_FLAGS = constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

interface Walk {
  /** Path components below the root; none is '.', '..' or a symlink (except, unfollowed, the last). */
  parts: string[];
  /** False if a component is missing (or a non-directory stands where a directory should). */
  found: boolean;
}

const split = (path: string) => path.split('/').filter((c) => c !== '' && c !== '.');
const imagePathOf = (parts: readonly string[]) => `/${parts.join('/')}`;
const errnoOf = (e: unknown) => (e as NodeJS.ErrnoException | undefined)?.code;

async function lstatOrUndefined(host: string): Promise<Stats | undefined> {
  try {
    return await lstat(host);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') return undefined;
    throw e;
  }
}

export class ImageFs {
  /** `root`: the host directory the image is mounted (or unpacked) at. */
  constructor(readonly root: string) {}

  /** One line naming the image path; the cause (an fs error) is kept for whoever debugs. */
  private error(path: string, why: string, cause?: unknown): HnError {
    return new HnError('EIMAGE_PATH', `image path ${imagePathOf(split(path))} (image at ${this.root}): ${why}`, { cause });
  }

  private host(parts: readonly string[]): string {
    return join(this.root, ...parts);
  }

  /**
   * Resolves `path` inside the image. `follow`: resolve the last component too
   * if it is a symlink. `create`: make missing directories on the way (and the
   * last component too when it is followed: mkdir -p).
   */
  private async walk(path: string, opts: { follow: boolean; create?: boolean }): Promise<Walk> {
    const parts: string[] = [];
    const todo = split(path);
    let found = true;
    let links = 0;
    while (todo.length) {
      const name = todo.shift()!;
      if (name === '..') {
        parts.pop(); // at the root, '..' is the root (as in a chroot)
        continue;
      }
      const last = todo.length === 0;
      if (!found || (last && !opts.follow)) {
        parts.push(name);
        continue;
      }
      const host = this.host([...parts, name]);
      const st = await lstatOrUndefined(host).catch((e) => {
        throw this.error(path, `cannot look at ${imagePathOf([...parts, name])}: ${errnoOf(e) ?? e}`, e);
      });
      if (!st) {
        if (!opts.create) {
          found = false;
          parts.push(name);
          continue;
        }
        await mkdir(host, 0o755).catch((e) => {
          if (errnoOf(e) !== 'EEXIST') throw this.error(path, `cannot create ${imagePathOf([...parts, name])}: ${errnoOf(e) ?? e}`, e);
        });
        todo.unshift(name); // look again: it may have been made by someone else, as a link
        continue;
      }
      if (st.isSymbolicLink()) {
        if (++links > MAX_LINKS) throw this.error(path, `more than ${MAX_LINKS} symbolic links on the way (a link loop at ${imagePathOf([...parts, name])}?)`);
        const target = await readlink(host).catch((e) => {
          throw this.error(path, `cannot read the link ${imagePathOf([...parts, name])}: ${errnoOf(e) ?? e}`, e);
        });
        if (target.startsWith('/')) parts.length = 0;
        todo.unshift(...split(target));
        continue;
      }
      if (!st.isDirectory() && !last) {
        if (opts.create) throw this.error(path, `${imagePathOf([...parts, name])} is not a directory`);
        found = false;
      }
      parts.push(name);
    }
    return { parts, found };
  }

  /**
   * Host path of image path `path`, resolved inside the image (for handing to
   * a tool: tar -C, depmod -b, a mount target). It holds no symlink, except an
   * unfollowed last component when `follow` is false. The path may not exist.
   */
  async resolve(path: string, opts: { follow?: boolean } = {}): Promise<string> {
    return this.host((await this.walk(path, { follow: opts.follow ?? true })).parts);
  }

  /** The path as the image sees it after resolving (e.g. /var/run/utmp -> /run/utmp). */
  async canonical(path: string, opts: { follow?: boolean } = {}): Promise<string> {
    return imagePathOf((await this.walk(path, { follow: opts.follow ?? true })).parts);
  }

  /** Stats of the path itself (a symlink is not followed); undefined if missing. */
  async lstat(path: string): Promise<Stats | undefined> {
    const w = await this.walk(path, { follow: false });
    return w.found ? lstatOrUndefined(this.host(w.parts)) : undefined;
  }

  /** Stats of what the path leads to inside the image; undefined if missing. */
  async stat(path: string): Promise<Stats | undefined> {
    const w = await this.walk(path, { follow: true });
    return w.found ? lstatOrUndefined(this.host(w.parts)) : undefined;
  }

  /** True if the path exists (a dangling symlink exists). */
  async exists(path: string): Promise<boolean> {
    return (await this.lstat(path)) !== undefined;
  }

  async read(path: string): Promise<Buffer> {
    const w = await this.walk(path, { follow: true });
    if (!w.found) throw this.error(path, 'no such file');
    try {
      const fh = await open(this.host(w.parts), READ_FLAGS);
      try {
        return await fh.readFile();
      } finally {
        await fh.close();
      }
    } catch (e) {
      throw this.error(path, `cannot read: ${errnoOf(e) ?? e}`, e);
    }
  }

  async readText(path: string): Promise<string> {
    return (await this.read(path)).toString('utf8');
  }

  /** Names in a directory (resolved inside the image); [] if it does not exist. */
  async list(path: string): Promise<string[]> {
    const w = await this.walk(path, { follow: true });
    if (!w.found) return [];
    try {
      return await readdir(this.host(w.parts));
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return [];
      throw this.error(path, `cannot list: ${errnoOf(e) ?? e}`, e);
    }
  }

  /**
   * Image paths matching `pattern`, whose last component may hold '*'
   * (any characters). The directory part is resolved inside the image, so
   * the results are canonical (var/run/utmp gives /run/utmp); a match that is
   * a symlink is returned as is, not followed.
   */
  async glob(pattern: string): Promise<string[]> {
    const all = split(pattern);
    const base = all.pop();
    if (base === undefined || all.some((c) => c.includes('*'))) throw new Error(`glob '${pattern}': only the last component may hold '*'`);
    const dir = await this.walk(all.join('/'), { follow: true });
    if (!dir.found) return [];
    if (!base.includes('*')) {
      const path = imagePathOf([...dir.parts, base]);
      return (await this.exists(path)) ? [path] : [];
    }
    const re = new RegExp(`^${base.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
    const names = (await this.list(imagePathOf(dir.parts))).filter((n) => re.test(n)).sort();
    return names.map((n) => imagePathOf([...dir.parts, n]));
  }

  /** mkdir -p inside the image; returns the directory's host path (for a mount target, say). */
  async mkdirp(path: string): Promise<string> {
    const w = await this.walk(path, { follow: true, create: true });
    const st = await lstatOrUndefined(this.host(w.parts));
    if (!st?.isDirectory()) throw this.error(path, 'exists and is not a directory');
    return this.host(w.parts);
  }

  /** Parent directories made, the last component itself left unresolved. */
  private async entry(path: string, what: string): Promise<{ host: string; parts: string[] }> {
    const w = await this.walk(path, { follow: false, create: true });
    if (w.parts.length === 0) throw this.error(path, `cannot ${what} the image root itself`);
    return { host: this.host(w.parts), parts: w.parts };
  }

  /**
   * Writes a regular file, making its parent directories. A symlink already
   * there is replaced, never written through. `mode` applies to the file
   * (default: 0644 for a new file, the old mode for an existing one).
   */
  async write(path: string, data: string | Uint8Array, opts: { mode?: number } = {}): Promise<string> {
    const { host } = await this.entry(path, 'write');
    const old = await lstatOrUndefined(host);
    if (old?.isDirectory()) throw this.error(path, 'is a directory, expected a file');
    if (old && !old.isFile()) await unlink(host);
    try {
      const fh = await open(host, WRITE_FLAGS | constants.O_CREAT | constants.O_TRUNC, opts.mode ?? 0o644);
      try {
        await fh.writeFile(data);
        if (opts.mode !== undefined) await fh.chmod(opts.mode);
      } finally {
        await fh.close();
      }
    } catch (e) {
      throw this.error(path, `cannot write: ${errnoOf(e) ?? e}`, e);
    }
    return host;
  }

  /** Copies a host file into the image (as write(); the mode defaults to the source's). */
  async copyIn(hostFile: string, path: string, opts: { mode?: number } = {}): Promise<string> {
    // stat, not lstat: the host's own links (its /etc/resolv.conf often is one) are the host's to follow.
    const [data, st] = await Promise.all([readFile(hostFile), stat(hostFile)]);
    return this.write(path, data, { mode: opts.mode ?? st.mode & 0o7777 });
  }

  /** Makes `path` a symlink to `target` (which the image interprets), replacing a file or link there. */
  async symlink(target: string, path: string): Promise<string> {
    const { host } = await this.entry(path, 'replace');
    const old = await lstatOrUndefined(host);
    if (old?.isDirectory()) throw this.error(path, 'is a directory, expected a symlink');
    if (old) await unlink(host);
    await symlink(target, host).catch((e) => {
      throw this.error(path, `cannot make a symlink: ${errnoOf(e) ?? e}`, e);
    });
    return host;
  }

  /** rm -rf of the path itself (a symlink is removed, not followed); nothing if missing. */
  async remove(path: string): Promise<void> {
    const w = await this.walk(path, { follow: false });
    if (w.parts.length === 0) throw this.error(path, 'refusing to remove the image root');
    if (!w.found) return;
    await rm(this.host(w.parts), { recursive: true, force: true }).catch((e) => {
      throw this.error(path, `cannot remove: ${errnoOf(e) ?? e}`, e);
    });
  }

  /** Renames within the image; neither end's last component is followed. */
  async rename(from: string, to: string): Promise<void> {
    const src = await this.walk(from, { follow: false });
    if (src.parts.length === 0) throw this.error(from, 'cannot rename the image root');
    const dest = await this.entry(to, 'rename onto');
    await rename(this.host(src.parts), dest.host).catch((e) => {
      throw this.error(from, `cannot rename to ${imagePathOf(dest.parts)}: ${errnoOf(e) ?? e}`, e);
    });
  }

  /** chmod of what the path leads to inside the image. */
  async chmod(path: string, mode: number): Promise<void> {
    const w = await this.walk(path, { follow: true });
    if (!w.found) throw this.error(path, 'no such file');
    await chmod(this.host(w.parts), mode).catch((e) => {
      throw this.error(path, `cannot chmod: ${errnoOf(e) ?? e}`, e);
    });
  }

  /** Empties the regular file the path leads to inside the image. */
  async truncate(path: string): Promise<void> {
    const w = await this.walk(path, { follow: true });
    const st = w.found ? await lstatOrUndefined(this.host(w.parts)) : undefined;
    if (!st) throw this.error(path, 'no such file');
    if (!st.isFile()) throw this.error(path, 'is not a regular file');
    try {
      const fh = await open(this.host(w.parts), WRITE_FLAGS);
      try {
        await fh.truncate(0);
      } finally {
        await fh.close();
      }
    } catch (e) {
      throw this.error(path, `cannot truncate: ${errnoOf(e) ?? e}`, e);
    }
  }
}

/** The image mounted (or unpacked) at host directory `root`. */
export const imageFs = (root: string) => new ImageFs(root);
