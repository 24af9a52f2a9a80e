// Publishing on the engine's test pipeline (real image, loop mount, seal): the
// published image never shares an inode with the cache, no `.partial` is left
// behind whether nothing changed, something changed or publishing failed, and
// editing the published image in place cannot reach the cache.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from '../../pipeline/runner.ts';
import type { StageDef } from '../../pipeline/stage.ts';
import { parseSidecar } from '../../pipeline/boot/sidecar.ts';
import { engineStages } from '../support/engine-stages.ts';

const repoDir = join(import.meta.dirname, '../..');

async function filesBelow(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}
const inode = async (path: string) => {
  const s = await stat(path);
  return `${s.dev}:${s.ino}`;
};
async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}
/** The finished image in the cache (there is exactly one per profile). */
async function finishedEntry(cache: string): Promise<string> {
  const entries = (await filesBelow(join(cache, 'checkpoints'))).filter((f) => /\/finished\.[^/]*\.img$/.test(f));
  expect(entries).toHaveLength(1);
  return entries[0]!;
}
/** What every publish must leave: no temporary file, an image of its own, a sidecar that matches it. */
async function expectCleanPublish(cache: string, out: string) {
  const image = join(out, 'hn-root.img');
  expect([...(await filesBelow(out)), ...(await filesBelow(cache))].filter((f) => f.includes('.partial'))).toEqual([]);
  const cacheInodes = await Promise.all((await filesBelow(cache)).map(inode));
  expect(cacheInodes).not.toContain(await inode(image));
  expect((await stat(image)).nlink).toBe(1);
  const digest = await sha256(image);
  expect(parseSidecar(await readFile(`${image}.sha256`, 'utf8')).sha256).toBe(digest);
  expect(digest).toBe(await sha256(await finishedEntry(cache)));
  return digest;
}
/** The test pipeline with the configure stage keyed on `input` (a changed input reruns it). */
const stagesWith = (input: string, runs: string[]): StageDef[] =>
  engineStages('none', runs).map((s) => (s.name === 'configure' ? { ...s, inputs: () => input } : s));

describe('[root] publishing', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hnpublish-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('no change and change: the image is a copy of its own, no .partial; editing it leaves the cache untouched', async () => {
    const cache = join(work, 'cache');
    const out = join(work, 'out');
    const go = (input: string, runs: string[] = []) => build({ profile: 'test-min', repoDir, cacheDir: cache, outputDir: out, stages: stagesWith(input, runs), progress: 'silent' });

    await go('one');
    const first = await expectCleanPublish(cache, out);

    // Edit the published image in place, as a probe or debugfs -w would.
    const entry = await finishedEntry(cache);
    const f = await open(join(out, 'hn-root.img'), 'r+');
    await f.write(Buffer.from('scribbled over by a test'), 0, 24, 1024 * 1024);
    await f.close();
    expect(await sha256(join(out, 'hn-root.img'))).not.toBe(first);
    expect(await sha256(entry)).toBe(first);

    // Nothing changed: no stage runs, and the edited image is replaced by a correct one.
    const none: string[] = [];
    const again = await go('one', none);
    expect(none).toEqual([]);
    expect(again.stages.filter((s) => s.kind !== 'compute').every((s) => s.status === 'cached')).toBe(true);
    expect(await expectCleanPublish(cache, out)).toBe(first);

    // A change: the stage reruns, the new image is published the same way.
    const changed: string[] = [];
    await go('two', changed);
    expect(changed).toEqual(['configure']);
    await expectCleanPublish(cache, out);
  });

  it('a publish that fails (output full, output read-only) leaves no .partial and nothing under the final name; the next one works', async () => {
    const cache = join(work, 'fail-cache');
    for (const [name, options, message] of [
      ['full', 'size=64k', /^no space left in .* for the image \(\d+ MiB\); free space or choose another --output$/],
      ['read-only', 'ro', /^cannot write to .* \(read-only\); make it writable or choose another --output$/],
    ] as const) {
      const out = join(work, `out-${name}`);
      await mkdir(out, { recursive: true });
      execFileSync('mount', ['-t', 'tmpfs', '-o', options, `hnforge-test-${name}`, out]);
      try {
        await expect(build({ profile: 'test-min', repoDir, cacheDir: cache, outputDir: out, stages: stagesWith('one', []), progress: 'silent' })).rejects.toThrow(message);
        expect(await readdir(out)).toEqual([]);
        expect((await filesBelow(cache)).filter((f) => f.includes('.partial'))).toEqual([]);
        // The build's own work image does not linger either.
        expect(await readdir(join(cache, 'build/test-min')).then((l) => l.filter((f) => f.endsWith('.img')))).toEqual([]);
      } finally {
        execFileSync('umount', [out]);
      }
    }
    // The finished image stayed in the cache: the next publish, to a writable output, runs no stage.
    const out = join(work, 'out-after');
    const runs: string[] = [];
    await build({ profile: 'test-min', repoDir, cacheDir: cache, outputDir: out, stages: stagesWith('one', runs), progress: 'silent' });
    expect(runs).toEqual([]);
    await expectCleanPublish(cache, out);
  });
});
