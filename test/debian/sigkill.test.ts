// kill -9 of a real test-min build at three points (mmdebstrap running, apt
// running, the seal running), each followed by a rerun: the rerun releases what
// the killed build held, leaves nothing of it behind (mounts, loop devices,
// processes, a deleted image held by a loop device) and publishes a sound image.
// Ordered so that each later kill reuses the cache the earlier runs filled.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseLeftovers } from '../../pipeline/recovery.ts';
import { run } from '../../pipeline/seam/run.ts';
import { hnforge, repoDir } from '../support/cli.ts';
import { leftoversBelow } from '../support/system.ts';

const MINUTE = 60_000;
const nothing = { mounts: [], loops: [], processes: [] };

describe('[root] SIGKILL during a real test-min build, then a rerun', () => {
  let work: string;
  let cache: string;
  let out: string;
  let buildDir: string;
  let settledBytes = 0; // disk usage of the cache after the first complete build

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hnsigkill-'));
    cache = join(work, 'cache');
    out = join(work, 'out');
    buildDir = join(cache, 'build/test-min');
  });
  afterAll(async () => {
    await releaseLeftovers(buildDir); // whatever a failed assertion left
    await rm(work, { recursive: true, force: true });
  });

  const buildArgs = (extra: string[] = []) => ['build', '--profile', 'test-min', '--cache', cache, '--output', out, '--no-sidecar', ...extra];

  /** Runs a build and SIGKILLs its node process once `ready()` says the stage is at the point wanted. */
  async function killWhen(extra: string[], ready: () => Promise<boolean>): Promise<number> {
    await rm(join(buildDir, 'logs'), { recursive: true, force: true }); // stage logs of earlier runs
    const child = spawn(join(repoDir, 'bin/hnforge'), buildArgs(extra), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, CI: 'true' } });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    let exited = false;
    const exit = new Promise((r) => child.on('exit', () => r((exited = true))));
    const deadline = Date.now() + 4 * MINUTE;
    while (!(await ready())) {
      if (exited || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`the kill point was never reached:\n${stderr.slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    // bin/hnforge execs node: this is the build itself, killed with no chance to unwind.
    expect(await readFile(`/proc/${child.pid}/cmdline`, 'utf8')).toContain('pipeline/cli.ts');
    child.kill('SIGKILL');
    await exit;
    return child.pid!;
  }

  const logOf = async (stage: string) => {
    const name = (await readdir(join(buildDir, 'logs')).catch(() => [])).find((f) => f.endsWith(`-${stage}.log`));
    return name ? readFile(join(buildDir, 'logs', name), 'utf8') : '';
  };
  const running = async (tool: RegExp) => {
    for (const p of await readdir('/proc')) {
      const argv = (await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ');
      if (tool.test(argv) && argv.includes(buildDir)) return true;
    }
    return false;
  };
  const cacheBytes = async () => Number((await run({ file: 'du', args: ['-s', '--block-size=1', cache], timeoutMs: MINUTE }, { capture: true })).stdout.split('\t')[0]);

  /** The rerun: it releases what the killed build left, finishes, and leaves nothing behind. */
  async function rerun(killed: number, left: Awaited<ReturnType<typeof leftoversBelow>>, extra: string[] = []) {
    const r = await hnforge(buildArgs(extra), { timeoutMs: 6 * MINUTE });
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const released = r.stderr.split('\n').filter((l) => l.startsWith(`hnforge: released left over (build pid ${killed} died): `));
    for (const m of left.mounts) expect(released).toContain(`hnforge: released left over (build pid ${killed} died): mount ${m.split(' ')[1]}`);
    for (const l of left.loops) expect(released.some((line) => line.includes(`loop device ${l.split(/\s+/)[0]} (`))).toBe(true);
    expect(await leftoversBelow(work)).toEqual(nothing);
    // No loop device holds a deleted image any more: the cache is back to its settled size.
    if (settledBytes) expect(Math.abs((await cacheBytes()) - settledBytes) / settledBytes).toBeLessThan(0.1);
    // The image is sound and has what the profile installs.
    const image = join(out, 'test-min/hn-root.img');
    await run({ file: 'e2fsck', args: ['-n', '-f', image], timeoutMs: 5 * MINUTE });
    const { stdout } = await run({ file: 'debugfs', args: ['-R', 'stat /usr/bin/busybox', image], timeoutMs: MINUTE }, { capture: true });
    expect(stdout).toMatch(/Type: regular/);
    return r;
  }

  it('killed while mmdebstrap bootstraps; the rerun builds from scratch', async () => {
    const killed = await killWhen([], async () => /I: (extracting|installing)/.test(await logOf('debian-bootstrap')) && (await running(/^\S*perl \S*mmdebstrap /)));
    const left = await leftoversBelow(cache);
    expect(left.mounts.map((m) => m.split(' ')[1])).toContain(join(buildDir, 'root'));
    expect(left.loops).toHaveLength(1);
    await rerun(killed, left);
    settledBytes = await cacheBytes();
  });

  it('killed while apt installs the packages; the rerun installs them again', async () => {
    // --from: the finished image is cached, and apt must run again.
    const killed = await killWhen(['--from', 'debian-packages'], async () => /^\S+ (Unpacking|Setting up) /m.test(await logOf('debian-packages')));
    const left = await leftoversBelow(cache);
    // The six: proc, sys, dev, dev/pts, the apt cache bind, the image.
    expect(left.mounts).toHaveLength(6);
    expect(left.loops).toHaveLength(1);
    const r = await rerun(killed, left, ['--from', 'debian-packages']);
    expect(r.stdout).toMatch(/debian-packages\s+ran/);
  });

  it('killed during the seal; the rerun seals again', async () => {
    // The seal lasts well under a second: kill as soon as it has started its first command
    // (a /proc scan per poll would be too slow), and check it had not got through e2fsck.
    const fsckDone = /files \(.*non-contiguous\)/;
    const killed = await killWhen(['--from', 'seal'], async () => {
      const log = await logOf('seal');
      return log.includes('$ fstrim') && !fsckDone.test(log);
    });
    expect(await logOf('seal')).not.toMatch(fsckDone);
    const left = await leftoversBelow(cache);
    await rerun(killed, left, ['--from', 'seal']);
  });
});
