// Faults in the engine, on real loop devices and mounts: a failing stage and a
// SIGINT mid-stage leave the system exactly as before, and the next build
// resumes from the checkpoint.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../../pipeline/runner.ts';
import { engineStages } from '../support/engine-stages.ts';
import { processesMatching, systemState } from '../support/system.ts';

const repoDir = join(import.meta.dirname, '../..');
const loader = `file://${repoDir}/node_modules/tsx/dist/loader.mjs`;

describe('[root] engine faults', () => {
  let work: string;
  let before: Awaited<ReturnType<typeof systemState>>;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hnfault-'));
    before = await systemState(work);
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('a failing stage unwinds everything; the next build resumes from the checkpoint', async () => {
    const cache = join(work, 'fail-cache');
    const out = join(work, 'fail-out');
    const runs: string[] = [];
    await expect(build({ profile: 'test-min', repoDir, cacheDir: cache, outputDir: out, stages: engineStages('fail', runs), progress: 'silent' })).rejects.toThrow('configure failed on purpose');
    expect(await systemState(work)).toEqual(before);
    await expect(stat(join(out, 'hn-root.img'))).rejects.toThrow();
    expect(runs).toEqual(['populate', 'configure']);

    const again: string[] = [];
    const result = await build({ profile: 'test-min', repoDir, cacheDir: cache, outputDir: out, stages: engineStages('none', again), progress: 'silent' });
    expect(again).toEqual(['configure']);
    expect(result.stages.find((s) => s.name === 'populate')?.status).toBe('restored');
    // The failed build unwound everything itself: nothing for this one to recover; the seal
    // released the image, so the unwind only let the lock go.
    expect(result.recovered).toEqual([]);
    expect(result.cleaned).toEqual(['build lock']);
    expect((await stat(join(out, 'hn-root.img'))).isFile()).toBe(true);
    expect(await systemState(work)).toEqual(before);

    // Nothing changed: the finished image comes from the cache and no stage runs.
    const third: string[] = [];
    const cached = await build({ profile: 'test-min', repoDir, cacheDir: cache, outputDir: out, stages: engineStages('none', third), progress: 'silent' });
    expect(third).toEqual([]);
    expect(cached.stages.filter((s) => s.kind !== 'compute').every((s) => s.status === 'cached')).toBe(true);
  });

  it('--keep-going: a failed optional stage does not stop the build, and the result says it failed', async () => {
    const cache = join(work, 'kg-cache');
    const out = join(work, 'kg-out');
    const stopped: string[] = [];
    await expect(build({ profile: 'test-min', repoDir, cacheDir: cache, outputDir: out, stages: engineStages('fail-optional', stopped), progress: 'silent' })).rejects.toThrow('configure failed on purpose');
    const runs: string[] = [];
    const result = await build({ profile: 'test-min', repoDir, cacheDir: cache, outputDir: out, stages: engineStages('fail-optional', runs), progress: 'silent', keepGoing: true });
    expect(result.ok).toBe(false);
    expect(result.stages.find((s) => s.name === 'configure')).toMatchObject({ status: 'failed-kept-going', error: 'configure failed on purpose' });
    expect(result.stages.find((s) => s.name === 'seal')?.status).toBe('ran');
    expect((await stat(join(out, 'hn-root.img'))).isFile()).toBe(true);
    expect(await systemState(work)).toEqual(before);
    // Such an image is not cached as finished: the next build runs the failed stage again.
    const next: string[] = [];
    await build({ profile: 'test-min', repoDir, cacheDir: cache, outputDir: out, stages: engineStages('none', next), progress: 'silent' });
    expect(next).toEqual(['configure']);
  });

  it('SIGINT mid-stage ends the stage\'s processes, unwinds, exits 130; the rerun resumes', async () => {
    const cache = join(work, 'int-cache');
    const out = join(work, 'int-out');
    const child = spawn('node', ['--import', loader, join(repoDir, 'test/support/fault-build.ts'), 'hang', cache, out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const logFile = join(cache, 'build/test-min/logs/04-configure.log');
    const deadline = Date.now() + 90_000;
    while (!(await readFile(logFile, 'utf8').catch(() => '')).includes('hanging')) {
      if (Date.now() > deadline) {
        child.kill('SIGINT');
        throw new Error(`the hanging stage never started: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await processesMatching('sleep 297')).toHaveLength(1);
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(130);
    expect(stderr).toContain('interrupted by SIGINT');
    expect(await processesMatching('sleep 297')).toEqual([]);
    expect(await systemState(work)).toEqual(before);
    await expect(stat(join(out, 'hn-root.img'))).rejects.toThrow();

    const runs: string[] = [];
    const result = await build({ profile: 'test-min', repoDir, cacheDir: cache, outputDir: out, stages: engineStages('none', runs), progress: 'silent' });
    expect(runs).toEqual(['configure']);
    expect(result.ok).toBe(true);
    expect(await systemState(work)).toEqual(before);
  });
});
