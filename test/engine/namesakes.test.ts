// Crash recovery recognises a build's resources by identity, not by path: a
// build in another chroot or container may use the very same path for its own
// files (seen when the suite ran on the host and in a fresh Debian tree at once:
// one run's recovery detached the other's loop device and killed its mmdebstrap).
// Here a tmpfs mounted over the directory stands for "the same path, another tree".
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cmd } from '../../pipeline/seam/command.ts';
import { run } from '../../pipeline/seam/run.ts';
import { ResourceStack } from '../../pipeline/seam/resources.ts';
import { attachLoop, loopsBackedBelow, processesRootedIn, umountPatiently } from '../../pipeline/seam/system.ts';

describe('[root] recovery tells its own resources from namesakes', () => {
  let work: string;
  const stack = new ResourceStack();
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hnnamesake-'));
  });
  afterAll(async () => {
    await stack.unwind();
    await rm(work, { recursive: true, force: true });
  });

  it('a loop device whose backing path now names another file is not ours; the same file is', async () => {
    const dir = join(work, 'loopbuild');
    await mkdir(dir);
    const image = join(dir, 'hn-root.img');
    await writeFile(image, '');
    await truncate(image, 8 * 2 ** 20);
    const { device } = await attachLoop(stack, image);
    expect((await loopsBackedBelow(dir)).map((l) => l.device)).toEqual([device]);

    // Another tree: the same path, another file.
    await run(cmd.mount('tmpfs', dir, { type: 'tmpfs' }));
    stack.push(`tmpfs ${dir}`, () => umountPatiently(dir));
    await writeFile(image, 'a namesake');
    expect(await loopsBackedBelow(dir)).toEqual([]);
    await umountPatiently(dir);

    // Deleted: only a device recorded in the journal beside the file is ours.
    await rm(image);
    expect((await loopsBackedBelow(dir)).map((l) => [l.device, l.deleted])).toEqual([[device, true]]);
    await rm(`${image}.loops`);
    expect(await loopsBackedBelow(dir)).toEqual([]);
  });

  it('a process rooted in a namesake of the build root is not ours', async () => {
    const dir = join(work, 'procbuild');
    const root = join(dir, 'root');
    await mkdir(join(root, 'bin'), { recursive: true });
    await copyFile('/bin/busybox', join(root, 'bin/busybox'));
    const child = spawn('chroot', [root, '/bin/busybox', 'sleep', '120'], { stdio: 'ignore' });
    stack.push('sleeper', async () => void child.kill('SIGKILL'));
    await new Promise((r) => setTimeout(r, 500));
    expect(await processesRootedIn(root)).toContain(child.pid);

    await run(cmd.mount('tmpfs', dir, { type: 'tmpfs' }));
    stack.push(`tmpfs ${dir}`, () => umountPatiently(dir));
    await mkdir(root);
    expect(await processesRootedIn(root)).not.toContain(child.pid);
  });
});
