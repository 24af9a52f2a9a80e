// Boots an image the pipeline built (systemd, Debian kernel, the project's
// initramfs from stages/boot-initramfs.ts) once under qemu: userspace is
// reached with the root on the loop device, /hostpart mounted, /data0 valid,
// and a real systemd poweroff goes through the exitrd and leaves the host
// partition clean.
//
// The image: $HNFORGE_TEST_PIPELINE_IMAGE, else hn-debian built by the CLI into
// the test cache (nothing runs when test/debian already built it). A copy gets a
// oneshot unit (written offline with debugfs) that prints the markers and powers
// the node off.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { addReportUnit } from '../../pipeline/boot-test.ts';
import { provision } from '../../pipeline/provision.ts';
import { bootDisk } from '../../pipeline/qemu.ts';
import { cmd } from '../../pipeline/seam/command.ts';
import { run } from '../../pipeline/seam/run.ts';
import { hnforge } from '../support/cli.ts';
import { CACHE, hostpartState, TEST_GRUB, type Disk } from './fixtures.ts';

async function pipelineImage(): Promise<string> {
  const env = process.env.HNFORGE_TEST_PIPELINE_IMAGE;
  if (env) return env;
  const out = join(CACHE, 'qemu-pipeline-out');
  const r = await hnforge(['build', '--profile', 'hn-debian', '--cache', CACHE, '--output', out], { timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`building hn-debian failed (${r.code}): ${r.stderr.slice(-2000)}`);
  return join(out, 'hn-debian/hn-root.img');
}

describe('[qemu][root] the pipeline-built hn-debian image boots', { timeout: 900_000 }, () => {
  let work: string;
  let disk: Disk;

  beforeAll(async () => {
    const image = await pipelineImage();
    await mkdir(CACHE, { recursive: true });
    work = await mkdtemp(join(CACHE, 'qemu-pipeline-'));
    const copy = join(work, 'hn-root.img');
    await run(cmd.copySparse(image, copy));
    // The same report unit `hnforge boot-test` adds: HN-USERSPACE once multi-user.target is reached, then poweroff.
    await addReportUnit(copy, work);
    const p = await provision({
      disk: join(work, 'disk'), image: copy, hostpartFs: 'ext4', yes: true, sizeBytes: Math.ceil((statSync(copy).size * 1.1 + 2 ** 29) / 2 ** 20) * 2 ** 20,
      grub: TEST_GRUB, hostpartFiles: { 'data/precious': 'gold\n' }, workDir: work,
    });
    disk = { path: join(work, 'disk'), efiOffset: p.efiOffsetBytes!, hostpartOffset: p.hostpartOffsetBytes! };
  }, 600_000);

  afterAll(async () => {
    if (work && process.env.HNFORGE_TEST_KEEP !== '1') await rm(work, { recursive: true, force: true });
  });

  it('reaches userspace on the loop device with /hostpart and /data0; systemd poweroff leaves hostpart clean', async () => {
    const r = await bootDisk({ disk: disk.path, logFile: join(work, 'serial.log'), timeoutMs: 600_000, memoryMiB: 1024 });
    const all = r.lines.join('\n');
    expect(r.end, all.slice(-3000)).toBe('poweroff');
    // A getty prompt may share the console line ("hn-unconfigured login: HN-USERSPACE ...").
    const found = r.markers.find((m) => m.line.includes('HN-USERSPACE '));
    const line = found && { ...found, line: found.line.slice(found.line.indexOf('HN-USERSPACE ')) };
    expect(line, all.slice(-3000)).toBeDefined();
    // eslint-disable-next-line no-console
    console.log(`pipeline image: userspace report at ${line!.atMs} ms after qemu start, poweroff at ${r.durationMs} ms`);
    expect(line!.line).toMatch(/ root=\/dev\/loop\d+ /);
    expect(line!.line).toContain(' rootmode=rw ');
    expect(line!.line).toContain(' backing=/hostpart/hn-root.img ');
    expect(line!.line).toMatch(/ hostpart=\/dev\/vda2,ext4,rw/);
    expect(line!.line).toContain(' data0=/hostpart/data ');
    expect(line!.line).toContain(' exitrd=yes ');
    expect(all).toContain('HN-DATA0 ok');
    expect(all).toContain('HN-SHUTDOWN host partition unmounted cleanly');
    expect(await hostpartState(disk)).toMatchObject({ clean: true, needsRecovery: false, fsck: 0 });
  });
});
