// Recovery after SIGKILL on the engine's small real pipeline (loop device,
// image mount, a command that hangs): what the killed build held is found and
// released by the next build or by `hnforge clean`, and nothing else is touched.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseLeftovers } from '../../pipeline/recovery.ts';
import { build } from '../../pipeline/runner.ts';
import { hnforge } from '../support/cli.ts';
import { engineStages } from '../support/engine-stages.ts';
import { leftoversBelow, processesMatching } from '../support/system.ts';

const repoDir = join(import.meta.dirname, '../..');
const loader = `file://${repoDir}/node_modules/tsx/dist/loader.mjs`;
const nothing = { mounts: [], loops: [], processes: [] };

/** Starts the engine pipeline in a child, SIGKILLs it while its configure stage runs `sleep 297`; returns what it held. */
async function killedMidStage(cache: string, out: string) {
  const child = spawn('node', ['--import', loader, join(repoDir, 'test/support/fault-build.ts'), 'hang', cache, out], { stdio: 'ignore' });
  const exited = new Promise((r) => child.on('exit', r));
  const deadline = Date.now() + 90_000;
  while (!(await readFile(join(cache, 'build/test-min/logs/04-configure.log'), 'utf8').catch(() => '')).includes('hanging')) {
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('the hanging stage never started');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill('SIGKILL');
  await exited;
  const buildDir = join(cache, 'build/test-min');
  const left = await leftoversBelow(cache);
  // What SIGKILL left (no unwind ran): the image mount, its loop device, the stage's command.
  expect(left.mounts.map((m) => m.split(' ')[1])).toEqual([join(buildDir, 'root')]);
  expect(left.loops).toHaveLength(1);
  const [sleeper] = await processesMatching('sleep 297');
  expect(left.processes).toEqual([sleeper]);
  const device = left.loops[0]!.split(/\s+/)[0]!;
  return {
    left,
    expected: [`process ${sleeper} (sleep 297)`, `mount ${join(buildDir, 'root')}`, `loop device ${device} (${join(buildDir, 'hn-root.img')})`],
  };
}

describe('[root] recovery after SIGKILL (engine pipeline)', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hnrecover-'));
  });
  afterAll(async () => {
    // Whatever a failed assertion left: the same recovery, for each build directory used.
    for (const cache of ['next-cache', 'clean-cache']) await releaseLeftovers(join(work, cache, 'build/test-min'));
    await rm(work, { recursive: true, force: true });
  });

  it('the next build releases what the killed one held (process, mount, loop device), then resumes', async () => {
    const cache = join(work, 'next-cache');
    const out = join(work, 'next-out');
    const { expected } = await killedMidStage(cache, out);
    const runs: string[] = [];
    const result = await build({ profile: 'test-min', repoDir, cacheDir: cache, outputDir: out, stages: engineStages('none', runs), progress: 'silent' });
    expect(result.recovered).toEqual(expected);
    expect(runs).toEqual(['configure']); // resumed from the checkpoint after populate
    expect(result.ok).toBe(true);
    expect(await leftoversBelow(work)).toEqual(nothing);
    // Its own resources were released by the stages (seal); the unwind only let the lock go.
    expect(result.cleaned).toEqual(['build lock']);
  });

  it('hnforge clean: refused while a build holds the lock; --dry-run lists and changes nothing; then releases, one line each', async () => {
    const cache = join(work, 'clean-cache');
    const { left, expected } = await killedMidStage(cache, join(work, 'clean-out'));
    const args = ['clean', '--profile', 'test-min', '--cache', cache];

    // A live build holds the lock: nothing is touched.
    const holder = spawn('node', ['--import', loader, join(repoDir, 'test/support/lock-holder.ts'), join(cache, 'build/test-min/.lock'), 'hold'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let held = '';
    holder.stdout.on('data', (d) => (held += d));
    while (!/held (\d+)/.test(held)) await new Promise((r) => setTimeout(r, 50));
    const refused = await hnforge(args, { timeoutMs: 60_000 });
    holder.kill('SIGKILL');
    process.kill(Number(/held (\d+)/.exec(held)![1]), 'SIGKILL');
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toBe(`hnforge: error: another build of profile test-min in ${cache} is running (pid ${holder.pid}); wait for it to finish or use another --cache`);
    expect(await leftoversBelow(cache)).toEqual(left);

    const dry = await hnforge([...args, '--dry-run', '--json'], { timeoutMs: 60_000 });
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ ok: true, dryRun: true, released: expected, failed: [] });
    expect(await leftoversBelow(cache)).toEqual(left);

    const real = await hnforge(args, { timeoutMs: 60_000 });
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toBe(expected.map((l) => `released ${l}\n`).join(''));
    expect(await leftoversBelow(cache)).toEqual(nothing);

    const again = await hnforge([...args, '--json'], { timeoutMs: 60_000 });
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: true, released: [], failed: [] });
  });
});
