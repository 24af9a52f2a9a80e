// The directory store (file:///path) against the store contract, plus what only
// a directory can show: modes of the written files, no temporary names left,
// hard links between channels, a stale lock of a dead process, a full disk.
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../../pipeline/publish/store-file.ts';
import { openStore } from '../../pipeline/publish/stores.ts';
import { describeStoreContract, failure, upload } from './store-contract.ts';

describeStoreContract('file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hnforge-file-store-'));
  return { store: new FileStore(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

describe('file store specifics', () => {
  it('parses file:// URLs and absolute paths, and refuses relative paths and unknown schemes', async () => {
    expect((await openStore('file:///srv/images')).url).toBe('file:///srv/images');
    expect((await openStore('/srv/images/')).url).toBe('file:///srv/images');
    expect((await failure(openStore('file://relative/x'))).code).toBe('ESTORE_URL');
    expect((await failure(openStore('ftp://host/x'))).code).toBe('ESTORE_URL');
    expect((await failure(openStore('images'))).code).toBe('ESTORE_URL');
  });

  it('leaves no temporary names and links channels to the same inode', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hnforge-file-store-'));
    try {
      const store = new FileStore(dir);
      const file = upload('hn-root_2.img.zst', Buffer.from('payload'));
      await store.putFiles({ profile: 'p', channel: 'nightly' }, '2', [file]);
      await store.copyFiles({ profile: 'p', channel: 'nightly' }, { profile: 'p', channel: 'stable' }, '2', [file]);
      expect(await readdir(join(dir, 'p', 'nightly'))).toEqual(['hn-root_2.img.zst']);
      const a = await stat(join(dir, 'p', 'nightly', file.name));
      const b = await stat(join(dir, 'p', 'stable', file.name));
      expect(a.ino).toBe(b.ino);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('takes a disposable file by hard link on its filesystem, and copies it from another (tmpfs) or when not disposable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hnforge-file-store-'));
    const shm = await mkdtemp('/dev/shm/hnforge-file-store-');
    try {
      const store = new FileStore(join(dir, 'store'));
      const nightly = { profile: 'p', channel: 'nightly' };
      const payload = Buffer.from('artifact bytes');
      const put = async (version: string, at: string, disposable: boolean) => {
        const path = join(at, `scratch-${version}`);
        await writeFile(path, payload);
        const file = { ...upload(`hn-root_${version}.img.zst`, payload), source: { path, disposable } };
        const { linked } = await store.putFiles(nightly, version, [file]);
        const [scratch, stored] = await Promise.all([stat(path), stat(join(dir, 'store', 'p', 'nightly', file.name))]);
        return { linked, sameInode: scratch.ino === stored.ino && scratch.dev === stored.dev };
      };
      expect(await put('1', dir, true)).toEqual({ linked: ['hn-root_1.img.zst'], sameInode: true });
      expect(await put('2', dir, false)).toEqual({ linked: [], sameInode: false });
      expect(await put('3', shm, true)).toEqual({ linked: [], sameInode: false });
      expect(await readdir(join(dir, 'store', 'p', 'nightly'))).toEqual(['hn-root_1.img.zst', 'hn-root_2.img.zst', 'hn-root_3.img.zst']);
    } finally {
      await rm(dir, { recursive: true, force: true });
      await rm(shm, { recursive: true, force: true });
    }
  });

  it('takes over a lock whose holder died on this host', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hnforge-file-store-'));
    try {
      const dead = await execa('sh', ['-c', 'echo $$']);
      await mkdir(join(dir, 'p'));
      await writeFile(join(dir, 'p', '.publish.lock'), JSON.stringify({ host: hostname(), pid: Number(dead.stdout), since: 'then' }));
      const lock = await new FileStore(dir).lock('p', 0);
      await lock.release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('[root] a full store is one ESTORE_FULL line and leaves no partial file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hnforge-file-store-full-'));
    try {
      await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
      try {
        const store = new FileStore(dir);
        const e = await failure(store.putFiles({ profile: 'p', channel: 'nightly' }, '3', [upload('hn-root_3.img.zst', Buffer.alloc(3 << 20, 7))]));
        expect(e.code).toBe('ESTORE_FULL');
        expect(e.message).toContain('no space left');
        expect(await readdir(join(dir, 'p', 'nightly'))).toEqual([]);
      } finally {
        await execa('umount', [dir]);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
