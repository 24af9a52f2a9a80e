// How the seam reports a program that is missing, versus a program that ran
// and exited 127 (chroot ROOT cmd: the command inside the image is missing).
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HnError } from '../../pipeline/errors.ts';
import { cmd } from '../../pipeline/seam/command.ts';
import { run } from '../../pipeline/seam/run.ts';

/** A directory holding an executable `name` that runs `body` (a stand-in for a host program). */
async function fakeBin(name: string, body: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hn-fakebin-'));
  await writeFile(join(dir, name), `#!/bin/sh\n${body}\n`);
  await chmod(join(dir, name), 0o755);
  return dir;
}

const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as HnError);

describe('missing program vs exit code 127', () => {
  it('chroot with a missing program inside is that command failing with 127, not a missing host tool', async () => {
    // chroot as coreutils does it: exit 127 when the command inside cannot be found.
    const bin = await fakeBin('chroot', 'echo "chroot: failed to run command \'$2\': No such file or directory" >&2; exit 127');
    const command = cmd.chroot('/', ['no-such-tool']);
    const err = await failure(run({ ...command, env: { ...command.env, PATH: `${bin}:/usr/bin:/bin` } }));
    expect(err).toBeInstanceOf(HnError);
    expect(err!.code).toBe('ECOMMAND');
    expect(err!.message).toBe('exit code 127: chroot / no-such-tool');
    expect(err!.message).not.toContain('not found');
    expect(err!.details.join('\n')).toContain("failed to run command 'no-such-tool'");
  });

  it('only the exec itself failing (ENOENT) is a missing tool, named with its Debian package', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'hn-emptypath-'));
    const err = await failure(run({ file: 'cpio', args: ['--version'], env: { PATH: empty } }));
    expect(err!.code).toBe('ENOTFOUND');
    expect(err!.message).toBe('cpio not found (install the Debian package cpio)');
    const unknown = await failure(run({ file: 'hnforge-no-such-program', args: [] }));
    expect(unknown!.message).toBe('hnforge-no-such-program not found');
  });

  it('a missing working directory is not reported as a missing program', async () => {
    const err = await failure(run({ file: 'true', args: [], cwd: '/nonexistent/hnforge-dir' }));
    expect(err!.code).toBe('ECOMMAND');
    expect(err!.message).toBe('working directory /nonexistent/hnforge-dir does not exist: true');
  });
});
