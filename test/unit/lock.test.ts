import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireBuildLock } from '../../pipeline/lock.ts';

const repoDir = join(import.meta.dirname, '../..');
const loader = `file://${repoDir}/node_modules/tsx/dist/loader.mjs`;
const holderScript = join(repoDir, 'test/support/lock-holder.ts');

function holder(args: string[]) {
  const child = spawn('node', ['--import', loader, holderScript, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise<string>((resolve) => child.on('exit', () => resolve(out)));
  return { child, output: () => out, exited };
}

async function until(what: () => boolean, ms: number) {
  const deadline = Date.now() + ms;
  while (!what()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const lockPath = async () => join(await mkdtemp(join(tmpdir(), 'hnlock-')), 'build/.lock');

describe('build lock', () => {
  it('a second holder is refused while the first lives, with its PID; released, it can be taken again', async () => {
    const path = await lockPath();
    const first = await acquireBuildLock(path, 'profile x');
    expect(await readFile(path, 'utf8')).toBe(`${process.pid}\n`);
    const other = holder([path, 'race', '0']);
    expect(await other.exited).toBe(`refused: another build of profile race is running (pid ${process.pid}); wait for it to finish or use another --cache\n`);
    await first.release();
    expect(await readFile(path, 'utf8')).toBe(''); // released cleanly: no dead owner for the next one
    const again = await acquireBuildLock(path, 'profile x');
    expect(again.deadOwner).toBeUndefined();
    await again.release();
  });

  it('8 processes racing for a stale lock: exactly one gets it', async () => {
    const path = await lockPath();
    const dead = spawn('true');
    await new Promise((r) => dead.on('exit', r));
    await acquireBuildLock(path, 'setup').then((l) => l.release());
    await writeFile(path, `${dead.pid}\n`); // what a killed build leaves: the PID of a dead owner
    const goAt = Date.now() + 3_000; // after all 8 have started node and loaded the code, on an idle machine
    const racers = Array.from({ length: 8 }, () => holder([path, 'race', String(goAt)]));
    await until(() => racers.every((r) => r.output().endsWith('\n')), 120_000);
    for (const r of racers) r.child.stdin!.end(); // the winner lets go only now that all have tried
    const outputs = await Promise.all(racers.map((r) => r.exited));
    expect(outputs.filter((o) => o === 'won\n')).toHaveLength(1);
    expect(outputs.filter((o) => o.startsWith('refused: another build of profile race is running'))).toHaveLength(7);
  });

  it('a holder killed with SIGKILL frees the lock at once, though a command it started still runs', async () => {
    const path = await lockPath();
    const h = holder([path, 'hold']);
    await until(() => /held \d+/.test(h.output()), 30_000);
    const sleeper = Number(/held (\d+)/.exec(h.output())![1]);
    await expect(acquireBuildLock(path, 'profile x')).rejects.toThrow(`(pid ${h.child.pid})`);
    h.child.kill('SIGKILL');
    await h.exited;
    try {
      expect(() => process.kill(sleeper, 0)).not.toThrow(); // the build's command outlived it...
      const lock = await acquireBuildLock(path, 'profile x'); // ...without holding the lock
      expect(lock.deadOwner).toBe(h.child.pid);
      await lock.release();
    } finally {
      process.kill(sleeper, 'SIGKILL');
    }
  });
});
