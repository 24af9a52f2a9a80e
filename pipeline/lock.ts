// One build per profile and cache at a time: a second build would share the
// work image and the mount point. The lock is a file holding the owner's PID;
// a lock whose owner is gone (a killed build) is taken over.

import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HnError } from './errors.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function acquireBuildLock(path: string, what: string): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return () => rm(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (owner && owner !== process.pid && alive(owner)) {
        throw new HnError('ELOCKED', `another build of ${what} is running (pid ${owner}); wait for it to finish or use another --cache`);
      }
      await rm(path, { force: true }); // stale: its owner is gone
    }
  }
  throw new HnError('ELOCKED', `could not take the build lock ${path}; remove it if no build is running`);
}
