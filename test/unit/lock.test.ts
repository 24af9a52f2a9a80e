import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireBuildLock } from '../../pipeline/lock.ts';

describe('build lock', () => {
  it('a second holder is refused while the first lives; released, it can be taken again', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'hnlock-')), 'build/.lock');
    const release = await acquireBuildLock(path, 'profile x');
    expect(await readFile(path, 'utf8')).toBe(`${process.pid}\n`);
    // Another live process holds it: refused with a clear message.
    const other = spawn('sleep', ['30']);
    await writeFile(path, `${other.pid}\n`);
    await expect(acquireBuildLock(path, 'profile x')).rejects.toThrow(`another build of profile x is running (pid ${other.pid})`);
    other.kill();
    await new Promise((r) => other.on('exit', r));
    // Its owner is gone: the stale lock is taken over.
    const again = await acquireBuildLock(path, 'profile x');
    await again();
    await release();
  });
});
