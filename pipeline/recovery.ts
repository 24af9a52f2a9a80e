// What a build killed without unwinding (SIGKILL, the OOM killer, a CI timeout)
// leaves behind, and its release: commands still running (tagged with the
// build directory, or rooted in its chroot), mounts below the build directory
// (deepest first), and loop devices backed by files in it, often deleted ones
// holding a whole image's blocks. Only called while holding the build lock, so
// everything found belongs to a dead build of this profile in this cache.

import { readdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HnError } from './errors.ts';
import { acquireBuildLock } from './lock.ts';
import { cmd } from './seam/command.ts';
import { run } from './seam/run.ts';
import { buildTagOf } from './seam/build-tag.ts';
import { endProcesses, loopsBackedBelow, mountsBelow, processesRootedIn, processesTaggedWith, umountPatiently } from './seam/system.ts';

export interface Recovery {
  /** One line per thing released (or, in a dry run, found). */
  released: string[];
  failed: { what: string; error: string }[];
}

/** The build directory as the kernel spells it (mount points and loop back-files are canonical). */
export async function canonicalBuildDir(buildDir: string): Promise<string> {
  return realpath(buildDir).catch(() => buildDir);
}

async function processesOf(buildDir: string): Promise<number[]> {
  const tagged = await buildTagOf(buildDir).then(processesTaggedWith, () => [] as number[]);
  const pids = new Set([...tagged, ...(await processesRootedIn(buildDir))]);
  return [...pids].sort((a, b) => a - b);
}

async function describeProcess(pid: number): Promise<string> {
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').filter(Boolean).join(' ');
  return `process ${pid} (${argv.length > 70 ? `${argv.slice(0, 67)}...` : argv || 'exited'})`;
}

/** Releases (or with dryRun only lists) what dead builds left in `buildDir`: processes, then mounts, then loop devices. */
export async function releaseLeftovers(buildDir: string, opts: { dryRun?: boolean } = {}): Promise<Recovery> {
  const dir = await canonicalBuildDir(buildDir);
  const released: string[] = [];
  const failed: Recovery['failed'] = [];
  const attempt = async (what: string, release: () => Promise<unknown>) => {
    try {
      if (!opts.dryRun) await release();
      released.push(what);
    } catch (e) {
      failed.push({ what, error: e instanceof Error ? e.message : String(e) });
    }
  };

  // Processes first: a running apt keeps its mounts busy.
  const pids = await processesOf(dir);
  const described = await Promise.all(pids.map(describeProcess));
  if (opts.dryRun) released.push(...described);
  else {
    try {
      const ended = await endProcesses(() => processesOf(dir));
      // Children started while dying were ended too; name them by PID.
      released.push(...described, ...ended.filter((p) => !pids.includes(p)).map((p) => `process ${p}`));
    } catch (e) {
      failed.push({ what: `processes of ${dir}`, error: (e as Error).message });
    }
  }
  // Deepest (most recently stacked) first, one layer at a time: a mount stacked on the
  // image mount by a second build is listed, and released, separately.
  for (const target of await mountsBelow(dir)) await attempt(`mount ${target}`, () => umountPatiently(target));
  for (const loop of await loopsBackedBelow(dir)) {
    await attempt(`loop device ${loop.device} (${loop.file}${loop.deleted ? ', deleted' : ''})`, () => run(cmd.losetupDetach(loop.device)));
  }
  // The loop journals (seam/system.ts attachLoop) have served: what they name is released or gone.
  if (!opts.dryRun && !failed.length) {
    for (const f of await readdir(dir).catch(() => [] as string[])) if (f.endsWith('.loops')) await rm(join(dir, f), { force: true });
  }
  return { released, failed };
}

/** Throws one HnError naming what could not be released, if anything. */
export function assertRecovered(recovery: Recovery, buildDir: string): void {
  if (!recovery.failed.length) return;
  const lines = recovery.failed.map((f) => `could not release ${f.what}: ${f.error}`);
  throw new HnError('ELEFTOVER', `an earlier build left resources in ${buildDir} that could not be released (${lines.join('; ')}); release them by hand, then rerun`, { details: lines });
}

/**
 * `hnforge clean`: takes the build lock (refused while a build runs), releases or
 * lists what dead builds left, and lets the lock go again.
 */
export async function cleanBuildDir(buildDir: string, what: string, opts: { dryRun?: boolean } = {}): Promise<Recovery & { deadOwner?: number }> {
  if (!(await stat(buildDir).then((s) => s.isDirectory(), () => false))) return { released: [], failed: [] };
  const lock = await acquireBuildLock(join(buildDir, '.lock'), what);
  let result: Recovery | undefined;
  try {
    result = await releaseLeftovers(buildDir, opts);
    return { ...result, deadOwner: lock.deadOwner };
  } finally {
    // A dry run (or a failed release) leaves the dead owner's PID: its leftovers are still there.
    const stillThere = opts.dryRun || !result || result.failed.length > 0;
    await lock.release(stillThere ? lock.deadOwner : undefined);
  }
}
