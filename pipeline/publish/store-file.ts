// The directory store (`file:///path`): the layout of pipeline/publish/store.ts
// as plain files, which any web server can serve to nodes and which works on
// /warehouse (the cluster filesystem) as on a local disk.
//
// Every file is written under a temporary name in its final directory (or, for
// a disposable file of the caller's on the same filesystem, linked there),
// synced and then moved into place: payload files by link(2), which fails when the
// name exists (two publishes of one version cannot overwrite each other), the
// index by rename(2) (replacing it is the point). Promote hard-links the
// payload into the other channel's directory (a copy across filesystems): the
// same bytes, no upload.

import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile, constants as fsConstants } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { HnError } from '../errors.ts';
import { sha256File } from './sums.ts';
import { LOCK_NAME, LOCK_POLL_MS, describeHolder, isStale, parseHolder, thisHolder } from './store-lock.ts';
import { INDEX_FILES, NAME_PATTERN, type ChannelIndex, type ChannelRef, type Store, type PutResult, type StoreLock, type StoredFile, type Upload } from './store.ts';

export class FileStore implements Store {
  readonly url: string;

  constructor(readonly root: string) {
    this.url = `file://${root}`;
  }

  private dir(ref: ChannelRef) {
    return join(this.root, ref.profile, ref.channel);
  }

  async profiles(): Promise<string[]> {
    const found: string[] = [];
    for (const name of await this.subdirectories(this.root)) {
      if ((await this.channels(name)).length) found.push(name);
    }
    return found.sort();
  }

  async channels(profile: string): Promise<string[]> {
    const found: string[] = [];
    for (const name of await this.subdirectories(join(this.root, profile))) {
      if (await exists(join(this.root, profile, name, INDEX_FILES.sums))) found.push(name);
    }
    return found.sort();
  }

  private async subdirectories(dir: string): Promise<string[]> {
    const entries = await this.io(dir, () => readdir(dir, { withFileTypes: true })).catch((e) => {
      if (isMissing(e)) return [];
      throw e;
    });
    return entries.filter((e) => e.isDirectory() && NAME_PATTERN.test(e.name)).map((e) => e.name);
  }

  async readIndex(ref: ChannelRef): Promise<ChannelIndex> {
    const read = (name: string) =>
      this.io(this.dir(ref), () => readFile(join(this.dir(ref), name))).then(
        (b) => new Uint8Array(b),
        (e) => {
          if (isMissing(e)) return undefined;
          throw e;
        },
      );
    const sums = await read(INDEX_FILES.sums);
    const signature = await read(INDEX_FILES.signature);
    return { ...(sums ? { sums } : {}), ...(signature ? { signature } : {}) };
  }

  async writeIndex(ref: ChannelRef, sums: Uint8Array, signature: Uint8Array | undefined): Promise<void> {
    const dir = this.dir(ref);
    await this.io(dir, async () => {
      await mkdir(dir, { recursive: true });
      await replaceFile(join(dir, INDEX_FILES.sums), sums);
      if (signature) await replaceFile(join(dir, INDEX_FILES.signature), signature);
      else await rm(join(dir, INDEX_FILES.signature), { force: true });
      await syncDirectory(dir);
    });
  }

  async putFiles(ref: ChannelRef, _version: string, files: Upload[]): Promise<PutResult> {
    const dir = this.dir(ref);
    const linked: string[] = [];
    await this.io(dir, () => mkdir(dir, { recursive: true }));
    for (const file of files) {
      const final = join(dir, file.name);
      if (await this.sameFileThere(final, file)) continue;
      const temporary = temporaryName(final);
      try {
        let took = false;
        await this.io(dir, async () => {
          if ('path' in file.source) took = await takeOrCopy(file.source, temporary);
          else await writeFile(temporary, file.source.bytes);
          await syncFile(temporary);
        });
        // (Where a concurrent publish got there first, publishName has hashed its file: the same bytes too.)
        await this.publishName(temporary, final, file);
        if (took) linked.push(file.name);
      } finally {
        await rm(temporary, { force: true });
      }
    }
    await this.io(dir, () => syncDirectory(dir));
    return { linked };
  }

  async copyFiles(from: ChannelRef, to: ChannelRef, _version: string, files: StoredFile[]): Promise<void> {
    const dir = this.dir(to);
    await this.io(dir, () => mkdir(dir, { recursive: true }));
    for (const file of files) {
      const source = join(this.dir(from), file.name);
      const final = join(dir, file.name);
      if (!(await exists(source))) throw new HnError('EPUBLISH_MISSING', `${this.url}: ${from.profile}/${from.channel}/${file.name} is missing`);
      if (await this.sameFileThere(final, file)) continue;
      const temporary = temporaryName(final);
      try {
        // A hard link where both channels share a filesystem (always, in one store), else a copy.
        await this.io(dir, () => link(source, temporary).catch(() => copyFile(source, temporary, fsConstants.COPYFILE_FICLONE)));
        await this.publishName(temporary, final, file);
      } finally {
        await rm(temporary, { force: true });
      }
    }
    await this.io(dir, () => syncDirectory(dir));
  }

  async readFile(ref: ChannelRef, file: StoredFile): Promise<Readable> {
    const path = join(this.dir(ref), file.name);
    if (!(await exists(path))) throw new HnError('EPUBLISH_MISSING', `${this.url}: ${ref.profile}/${ref.channel}/${file.name} is missing`);
    return createReadStream(path, { highWaterMark: 1 << 20 }); // 1 MiB reads hash fastest here (4 MiB: twice as slow, fresh buffers)
  }

  async removeFiles(ref: ChannelRef, _version: string, files: StoredFile[]): Promise<void> {
    const dir = this.dir(ref);
    await this.io(dir, async () => {
      for (const file of files) await rm(join(dir, file.name), { force: true });
      await syncDirectory(dir).catch(() => undefined);
    });
  }

  async lock(profile: string, waitMs: number): Promise<StoreLock> {
    const dir = join(this.root, profile);
    const path = join(dir, LOCK_NAME);
    await this.io(dir, () => mkdir(dir, { recursive: true }));
    const me = thisHolder();
    const deadline = Date.now() + waitMs;
    for (;;) {
      try {
        // O_EXCL: atomic on local filesystems and on the cluster filesystem alike (flock is not
        // reliably shared between nodes of a FUSE cluster filesystem).
        await writeFile(path, JSON.stringify(me) + '\n', { flag: 'wx' });
        return { release: () => rm(path, { force: true }) };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw this.explain(e, dir);
      }
      const holder = await readFile(path, 'utf8').then(parseHolder, () => undefined);
      if (holder && isStale(holder, me.host)) {
        // The holder died on this host (SIGKILL, power cut of the builder): its lock is stale.
        await rm(path, { force: true });
        continue;
      }
      if (Date.now() >= deadline) {
        throw new HnError('EPUBLISH_BUSY', `${this.url}: another publish, promote or prune of ${profile} holds ${path} (${describeHolder(holder)}); wait for it to finish, or remove that file if that process is gone`);
      }
      await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
    }
  }

  async close(): Promise<void> {}

  /** True when `final` exists with the content announced; EPUBLISH_EXISTS when it exists with other content. */
  private async sameFileThere(final: string, file: StoredFile): Promise<boolean> {
    const info = await stat(final).catch(() => undefined);
    if (!info) return false;
    if (info.size === file.size && (await sha256File(final)) === file.sha256) return true;
    throw new HnError('EPUBLISH_EXISTS', `${final} already exists with other content; published files are immutable: publish under a new version`);
  }

  /** Gives a complete temporary file its final name, unless a concurrent writer got there first. */
  private async publishName(temporary: string, final: string, file: StoredFile) {
    try {
      await link(temporary, final);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && (await this.sameFileThere(final, file))) return;
      throw this.explain(e, dirname(final));
    }
  }

  private async io<T>(dir: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      throw this.explain(e, dir);
    }
  }

  private explain(e: unknown, dir: string): unknown {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return new HnError('ESTORE_FULL', `${this.url}: no space left in ${dir}; free space or prune (hnforge prune --keep N)`, { cause: e });
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new HnError('ESTORE_DENIED', `${this.url}: cannot write to ${dir} (${code}); make it writable or choose another --store`, { cause: e });
    return e;
  }
}

/**
 * A disposable file is linked (no copy of a 300 MiB artifact), others are copied; a link across
 * filesystems falls back to a copy. True when linked.
 */
async function takeOrCopy(source: { path: string; disposable?: boolean }, temporary: string): Promise<boolean> {
  if (source.disposable && (await link(source.path, temporary).then(() => true, () => false))) return true;
  await copyFile(source.path, temporary, fsConstants.COPYFILE_FICLONE);
  return false;
}

function temporaryName(final: string) {
  return join(dirname(final), `.${final.split('/').pop()}.${randomBytes(4).toString('hex')}.partial`);
}

/** Writes `bytes` to `path` whole: a temporary file, fsync, rename over the old one. */
async function replaceFile(path: string, bytes: Uint8Array) {
  const temporary = temporaryName(path);
  try {
    await writeFile(temporary, bytes);
    await syncFile(temporary);
    await rename(temporary, path);
  } finally {
    await rm(temporary, { force: true });
  }
}

async function syncFile(path: string) {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A rename or link is durable only once its directory is synced. */
async function syncDirectory(dir: string) {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function exists(path: string) {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function isMissing(e: unknown) {
  return (e as NodeJS.ErrnoException).code === 'ENOENT';
}
