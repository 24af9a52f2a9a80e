// The linuxrc hook as a shell program: syntax under busybox sh (what the
// genkernel initramfs runs) and dash, and the order of calls into the boot
// module, with the boot module and the commands that would touch the machine
// (mount, switch_root, udevadm) replaced by stubs that print what they got.
// The call-order tests run under dash: Debian's busybox sh runs its own
// applets before PATH, so PATH stubs would not replace mount there.
// NOT verified here: the hook inside a real genkernel initramfs at boot.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../pipeline/seam/run.ts';
import { linuxrcHook, patchLinuxrc } from '../../pipeline/gentoo/kernel.ts';
import { FAKE_LINUXRC, REPO, tempDir } from './fixtures.ts';

const SHELLS = [['/bin/busybox', 'sh'], ...(existsSync('/usr/bin/dash') ? [['/usr/bin/dash']] : [])];

let dir: string;

async function runHook(module: string | undefined): Promise<string[]> {
  const modulePath = join(dir, 'hn-boot.sh');
  await rm(modulePath, { force: true });
  if (module !== undefined) await writeFile(modulePath, module);
  const script = [
    `NEW_ROOT=${dir}/newroot`,
    'bad_msg() { echo "BAD $*"; }',
    linuxrcHook(modulePath),
    'echo "GENKERNEL-CONTINUES"',
  ].join('\n');
  await writeFile(join(dir, 'linuxrc'), script);
  const { stdout } = await run(
    { file: '/usr/bin/dash', args: [join(dir, 'linuxrc')], timeoutMs: 10_000, env: { PATH: `${dir}/bin:/usr/bin:/bin` } },
    { capture: true, okExitCodes: [1] },
  );
  return stdout.split('\n').filter(Boolean);
}

const STUB_MODULE = [
  'hn_log() { echo "log $*"; }',
  'hn_prepare_root() { echo "prepare $1 with $HN_BOOT_SH"; }',
  'hn_setup_exitrd() { echo "exitrd $1"; }',
  'hn_fail() { echo "FAIL $*"; exit 1; }',
  '',
].join('\n');

describe.skipIf(!existsSync('/usr/bin/dash'))('linuxrc hook', () => {
  beforeAll(async () => {
    dir = await tempDir('hnforge-hook-');
    await mkdir(join(dir, 'bin'));
    for (const [name, body] of [
      ['mount', 'echo "mount $*"'],
      ['umount', 'echo "umount $*"'],
      // The hook silences udevadm; the stub leaves a trace in a file instead.
      ['udevadm', `echo "udevadm $*" >> ${dir}/udevadm.calls`],
      ['switch_root', 'echo "switch_root $*"; exit 0'],
    ]) {
      await writeFile(join(dir, 'bin', name!), `#!/bin/sh\n${body}\n`);
      await chmod(join(dir, 'bin', name!), 0o755);
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('patched linuxrc parses under busybox sh and dash', async () => {
    const patched = join(dir, 'patched');
    await writeFile(patched, patchLinuxrc(FAKE_LINUXRC));
    for (const sh of SHELLS) await run({ file: sh[0]!, args: [...sh.slice(1), '-n', patched], timeoutMs: 10_000 });
  });

  it('prepares the root with the boot module, sets up the exitrd, hands the API filesystems over and switches root', async () => {
    const lines = await runHook(STUB_MODULE);
    expect(lines).toEqual([
      `prepare ${dir}/newroot with ${dir}/hn-boot.sh`,
      'exitrd /lib/hn-shutdown',
      `mount --move /dev ${dir}/newroot/dev`, `mount --move /proc ${dir}/newroot/proc`,
      `mount --move /sys ${dir}/newroot/sys`, `mount --move /run ${dir}/newroot/run`,
      `switch_root ${dir}/newroot /sbin/init`,
    ]);
    expect(await readFile(join(dir, 'udevadm.calls'), 'utf8')).toBe('udevadm control --exit\n');
  });

  it('a failure inside hn_prepare_root stops there (hn_fail), nothing is switched', async () => {
    const lines = await runHook(STUB_MODULE.replace('hn_prepare_root() { echo "prepare $1 with $HN_BOOT_SH"; }', 'hn_prepare_root() { hn_fail "no usable root image"; }'));
    expect(lines).toEqual(['FAIL no usable root image']);
  });

  it('a boot module without hn_prepare_root is reported and genkernel carries on', async () => {
    const lines = await runHook('hn_log() { :; }\n');
    expect(lines).toEqual([`BAD hnforge: ${dir}/hn-boot.sh has no hn_prepare_root; falling back to genkernel root detection`, 'GENKERNEL-CONTINUES']);
  });

  it("uses the module's own hn_genkernel_main when it has one", async () => {
    const lines = await runHook(`${STUB_MODULE}hn_genkernel_main() { echo "main $1"; }\n`);
    expect(lines).toEqual([`main ${dir}/newroot`, 'GENKERNEL-CONTINUES']);
  });

  it("the repository's boot module provides what the hook calls", async () => {
    const { stdout } = await run(
      { file: '/usr/bin/dash', args: ['-c', `. ${join(REPO, 'boot/hn-boot.sh')}; for f in hn_prepare_root hn_setup_exitrd hn_fail hn_log; do command -v $f >/dev/null && echo $f; done`], timeoutMs: 10_000 },
      { capture: true },
    );
    expect(stdout.trim().split('\n')).toEqual(['hn_prepare_root', 'hn_setup_exitrd', 'hn_fail', 'hn_log']);
  });

  it('without the module it says so and leaves genkernel to find the root', async () => {
    const lines = await runHook(undefined);
    expect(lines[0]).toMatch(/^BAD hnforge: .*hn-boot\.sh is missing/);
    expect(lines.at(-1)).toBe('GENKERNEL-CONTINUES');
  });
});
