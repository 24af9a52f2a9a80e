// Privileged operations that hold something: each registers its release on the
// build's ResourceStack the moment it succeeds.

import { appendFile, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { BUILD_TAG_VAR } from './build-tag.ts';
import { cmd } from './command.ts';
import type { HnError } from '../errors.ts';
import type { ResourceStack, Held } from './resources.ts';
import { run, type RunOptions } from './run.ts';

/**
 * Attaches `file` to a loop device and records the device with the file's identity
 * in `<file>.loops` (beside it): once the file is deleted, its path no longer tells
 * whose it was, and crash recovery detaches only devices recorded there.
 */
export async function attachLoop(stack: ResourceStack, file: string, opts: RunOptions = {}): Promise<{ device: string; held: Held }> {
  const { stdout } = await run(cmd.losetupAttach(file), { ...opts, capture: true });
  const device = stdout.trim();
  await appendFile(loopJournal(file), `${device} ${(await stat(file)).ino}\n`);
  const held = stack.push(`loop device ${device} (${file})`, async () => {
    await run(cmd.losetupDetach(device));
  });
  return { device, held };
}

export async function mountOn(
  stack: ResourceStack,
  source: string,
  target: string,
  mountOpts: Parameters<typeof cmd.mount>[2] = {},
  opts: RunOptions & { recursiveRelease?: boolean } = {},
): Promise<Held> {
  await run(cmd.mount(source, target, mountOpts), opts);
  return stack.push(`mount ${target}`, async () => {
    // Recursive for an image root: a tool killed mid-run (mmdebstrap) may have left its own mounts below it.
    await umountPatiently(target, opts.recursiveRelease);
  });
}

const UMOUNT_BUSY = 32;

/**
 * umount, retried while the target is busy: a process that just got SIGKILL, or
 * someone walking the tree (du, find), holds a mount for a moment.
 */
export async function umountPatiently(target: string, recursive = false, attempts = 10): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      await run(cmd.umount(target, { recursive }));
      return;
    } catch (e) {
      const busy = (e as HnError).code === 'ECOMMAND' && (e as HnError).message.startsWith(`exit code ${UMOUNT_BUSY}:`);
      if (!busy || i >= attempts) throw e;
      await new Promise((r) => setTimeout(r, 300 * i));
    }
  }
}

/** Mount points at or below `dir`, deepest first (from /proc/self/mountinfo). */
export async function mountsBelow(dir: string): Promise<string[]> {
  const unescape = (p: string) => p.replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => unescape(l.split(' ')[4] ?? ''))
    .filter((p) => p === dir || p.startsWith(dir + '/'))
    .reverse();
}

/**
 * PIDs of processes whose root directory is `root` or below it (daemons a package
 * started in the chroot). The directory must be the one we see at that path, not
 * a namesake in another chroot or container: device and inode are compared too.
 */
export async function processesRootedIn(root: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const r = await readlink(`/proc/${name}/root`);
      if (r !== root && !r.startsWith(root + '/')) continue;
      const [theirs, ours] = await Promise.all([stat(`/proc/${name}/root`), stat(r)]);
      if (theirs.dev === ours.dev && theirs.ino === ours.ino) pids.push(Number(name));
    } catch {
      /* exited or not ours to read */
    }
  }
  return pids;
}

/** PIDs of processes a build started (its commands and their children): `tag` from buildTagOf (build-tag.ts). */
export async function processesTaggedWith(buildTag: string): Promise<number[]> {
  const tag = `${BUILD_TAG_VAR}=${buildTag}`;
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const environ = await readFile(`/proc/${name}/environ`, 'utf8').catch(() => '');
    if (environ.split('\0').includes(tag)) pids.push(Number(name));
  }
  return pids;
}

/**
 * Ends the processes `find` returns, found afresh each round (a dying apt may still
 * start a child): TERM for a second, then KILL, until none is left. Returns every
 * PID signalled; throws if some survive KILL for 10 s (stuck in the kernel).
 */
export async function endProcesses(find: () => Promise<number[]>): Promise<number[]> {
  const signalled = new Set<number>();
  const started = Date.now();
  for (;;) {
    const pids = (await find()).filter((pid) => pid !== process.pid);
    if (!pids.length) return [...signalled];
    const waited = Date.now() - started;
    if (waited > 10_000) throw new Error(`still running after SIGKILL: pid ${pids.join(' ')}`);
    for (const pid of pids) {
      signalled.add(pid);
      try { process.kill(pid, waited < 1_000 ? 'SIGTERM' : 'SIGKILL'); } catch { /* gone */ }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Ends processes left running inside a chroot: TERM, a short wait, then KILL. */
export function endProcessesIn(root: string): Promise<number[]> {
  return endProcesses(() => processesRootedIn(root));
}

export interface LoopDevice {
  device: string;
  /** The backing file as the kernel names it (the path it had when attached). */
  file: string;
  /** The backing file was deleted: the loop device alone keeps its blocks allocated. */
  deleted: boolean;
}

/** Where attachLoop records the devices attached to `file`. */
export const loopJournal = (file: string) => `${file}.loops`;

/** `losetup --raw` escapes spaces and other bytes in a path as \xHH. */
const unescapeRaw = (s: string) => s.replace(/\\x([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));

/**
 * Loop devices backed by files below `dir`, deleted ones included, that are really
 * ours: a path is only a name (another chroot or container may attach its own file
 * under the same path), so an existing backing file must be the file we see there
 * (same device and inode), and a deleted one must be recorded in the journal of
 * the file that had its name (attachLoop).
 */
export async function loopsBackedBelow(dir: string): Promise<LoopDevice[]> {
  const { stdout } = await run(cmd.losetupListIdentity(), { capture: true });
  const loops: LoopDevice[] = [];
  for (const line of stdout.split('\n')) {
    // The inode, not the device number: btrfs reports a subvolume's own device to stat() but not to the loop driver.
    // --raw: one space between columns, spaces inside a column escaped (also in " (deleted)").
    const [device, , ino, rawFile] = line.trim().split(' ').map(unescapeRaw);
    const m = rawFile === undefined ? null : /^(.+?)( \(deleted\))?$/.exec(rawFile);
    if (!device || !m) continue;
    const [, file = '', deleted] = m;
    if (!file.startsWith(dir + '/')) continue;
    const ours = deleted
      ? (await readFile(loopJournal(file), 'utf8').catch(() => '')).split('\n').includes(`${device} ${ino?.trim()}`)
      : await stat(file).then((st) => String(st.ino) === ino?.trim(), () => false);
    if (ours) loops.push({ device, file, deleted: Boolean(deleted) });
  }
  return loops;
}

/**
 * Snapshot of what is attached and mounted, to prove a build left nothing behind.
 * With `scope`, only mounts at or below it and loop devices backed by files below
 * it: on a shared machine other people's builds come and go meanwhile.
 */
export async function systemState(scope?: string): Promise<{ loops: string[]; mounts: string[] }> {
  const inScope = (path: string | undefined) => scope === undefined || (path !== undefined && (path === scope || path.startsWith(scope + '/')));
  const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l && inScope(l.split(' ')[1])).sort();
  const { stdout } = await run(cmd.losetupList(), { capture: true });
  const loops = stdout.split('\n').map((l) => l.trim()).filter((l) => l && inScope(l.split(/\s+/)[1])).sort();
  return { loops, mounts };
}
