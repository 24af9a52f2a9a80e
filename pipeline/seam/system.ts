// Privileged operations that hold something: each registers its release on the
// build's ResourceStack the moment it succeeds.

import { readdir, readFile, readlink } from 'node:fs/promises';
import { cmd } from './command.ts';
import type { HnError } from '../errors.ts';
import type { ResourceStack, Held } from './resources.ts';
import { run, type RunOptions } from './run.ts';

export async function attachLoop(stack: ResourceStack, file: string, opts: RunOptions = {}): Promise<{ device: string; held: Held }> {
  const { stdout } = await run(cmd.losetupAttach(file), { ...opts, capture: true });
  const device = stdout.trim();
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

/** PIDs of processes whose root directory is `root` or below it (daemons a package started in the chroot). */
export async function processesRootedIn(root: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const r = await readlink(`/proc/${name}/root`);
      if (r === root || r.startsWith(root + '/')) pids.push(Number(name));
    } catch {
      /* exited or not ours to read */
    }
  }
  return pids;
}

/** Ends processes left running inside a chroot: TERM, a short wait, then KILL. */
export async function endProcessesIn(root: string): Promise<number[]> {
  const pids = await processesRootedIn(root);
  for (const pid of pids) {
    try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
  }
  if (pids.length) {
    await new Promise((r) => setTimeout(r, 1000));
    for (const pid of await processesRootedIn(root)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
  return pids;
}

/** Snapshot of what is attached and mounted, to prove a build left nothing behind. */
export async function systemState(): Promise<{ loops: string[]; mounts: string[] }> {
  const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').filter(Boolean).sort();
  const { stdout } = await run(cmd.losetupList(), { capture: true });
  const loops = stdout.split('\n').map((l) => l.trim()).filter(Boolean).sort();
  return { loops, mounts };
}
