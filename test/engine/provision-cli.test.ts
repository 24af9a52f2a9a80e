// `hnforge provision` from the command line on a disk image file: the plan,
// the refusals, and the partitions it writes (booting them is test/boot's job).
import { mkdtemp, rm, writeFile, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../pipeline/seam/run.ts';
import { hnforge } from '../support/cli.ts';
import { systemState } from '../support/system.ts';

describe('[root] hnforge provision', () => {
  let work: string;
  let image: string;
  // Scoped to the work directory: other builds may hold loop devices and mounts on this machine meanwhile.
  let before: Awaited<ReturnType<typeof systemState>>;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hnprov-'));
    image = join(work, 'hn-root.img');
    // A small real ext4 image stands for hn-root.img: provisioning only copies it.
    await writeFile(image, '');
    await truncate(image, 64 * 2 ** 20);
    await run({ file: 'mkfs.ext4', args: ['-F', '-q', '-L', 'hn-root', image], timeoutMs: 60_000 });
    before = await systemState(work);
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('asks for --yes, then writes GPT with EFI-BOOT and hostpart; refuses to overwrite without --force', async () => {
    const disk = join(work, 'disk.img');
    const noYes = await hnforge(['provision', '--disk', disk, '--image', image, '--size', '1G', '--hostpart-fs', 'ext4']);
    expect(noYes.code).toBe(1);
    expect(noYes.stderr).toMatch(/hnforge: error: provisioning destroys everything on .*disk\.img; add --yes to go ahead/);

    const ok = await hnforge(['provision', '--disk', disk, '--image', image, '--size', '1G', '--hostpart-fs', 'ext4', '--yes'], { timeoutMs: 300_000 });
    expect(ok.code, ok.stderr).toBe(0);
    const { stdout } = await run({ file: 'sgdisk', args: ['--print', disk], timeoutMs: 30_000 }, { capture: true });
    expect(stdout).toMatch(/^\s+1\s+\d+\s+\d+\s+128\.0 MiB\s+EF00\s+EFI-BOOT$/m);
    expect(stdout).toMatch(/^\s+2\s+.*hostpart$/m);

    const again = await hnforge(['provision', '--disk', disk, '--image', image, '--yes']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('has partitions or filesystems (listed above); add --force to destroy them');
    expect(again.stderr).toMatch(/partition 1: 128 MiB/);
    expect(await systemState(work)).toEqual(before);
  });

  it('dry run prints the plan and changes nothing', async () => {
    const disk = join(work, 'dry.img');
    const r = await hnforge(['provision', '--disk', disk, '--image', image, '--size', '1G', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Nothing on it to destroy');
    await expect(import('node:fs/promises').then((fs) => fs.stat(disk))).rejects.toThrow();
  });
});
