// One build per profile and cache at a time: a second build would share the
// work image and the mount point. The lock is flock(2) on an open file
// description of the lock file: node opens the file, `flock --nonblock` locks
// the description it inherits as fd 3, and the lock lives exactly as long as
// node keeps the file open. The kernel drops it when node dies, even by
// SIGKILL, and two builds racing for a free lock cannot both get it. Node opens
// files close-on-exec, so the commands a build runs never hold the lock.
// The file is never removed (a removed lock file lets two builds lock two
// different inodes); it holds the owner's PID, for messages and to tell that
// the previous owner died without releasing (release empties it).

import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HnError } from './errors.ts';
import { cmd } from './seam/command.ts';
import { run } from './seam/run.ts';

const FLOCK_CONFLICT = 1; // flock's exit code when --nonblock finds the lock taken

// Node closes a FileHandle nobody references when it is garbage-collected, which would
// drop the lock in the middle of a build: every held lock stays referenced here.
const held = new Set<FileHandle>();

export interface BuildLock {
  /** PID of an earlier holder that died without releasing (its leftovers may still be there). */
  deadOwner?: number;
  /** Lets the lock go; the file is emptied (a clean release) or keeps `leftPid` (a dry run found a dead owner's leftovers). */
  release(leftPid?: number): Promise<void>;
}

export async function acquireBuildLock(path: string, what: string): Promise<BuildLock> {
  await mkdir(dirname(path), { recursive: true });
  const file = await open(path, 'a+');
  try {
    const { exitCode } = await run(cmd.flockExclusive(3), { fd3: file.fd, okExitCodes: [FLOCK_CONFLICT] });
    if (exitCode === FLOCK_CONFLICT) {
      const owner = (await readFile(path, 'utf8').catch(() => '')).trim();
      throw new HnError('ELOCKED', `another build of ${what} is running${owner ? ` (pid ${owner})` : ''}; wait for it to finish or use another --cache`);
    }
  } catch (e) {
    await file.close();
    throw e;
  }
  const previous = Number((await file.readFile('utf8')).trim()) || undefined;
  await file.truncate(0);
  await file.write(`${process.pid}\n`, 0);
  held.add(file);
  return {
    deadOwner: previous !== process.pid ? previous : undefined,
    release: async (leftPid?: number) => {
      await file.truncate(0);
      if (leftPid) await file.write(`${leftPid}\n`, 0);
      await file.close();
      held.delete(file);
    },
  };
}
