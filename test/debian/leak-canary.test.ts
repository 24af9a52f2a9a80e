// [root] Canary secrets through the real test-min build. The build runs in a
// private mount and UTS namespace where the "build host" has a canary
// hostname, a canary SSH host key over /etc/ssh and a canary shell history
// over /root (bind mounts the real host never sees), and a canary mirror
// password in its environment. None of them may appear in the published
// image (the leak check passes, and a raw grep of the image file agrees).
// Then one is planted inside a copy of that image (debugfs): the leak check
// on it fails with ELEAK naming the file.

import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HnError } from '../../pipeline/errors.ts';
import { resolveProfile } from '../../pipeline/profiles.ts';
import { buildNeedles, leakError, scanTree } from '../../stages/leak-check.ts';
import { repoDir } from '../support/cli.ts';
import { TEST_CACHE } from '../support/test-cache.ts';

const tag = Math.random().toString(36).slice(2, 8);
const CANARY = {
  hostname: `canary-host-${tag}`,
  mirrorPassword: `canary-mirror-pw-${tag}`,
  history: `rsync -a /srv/canary-history-${tag}/ backup:/srv/`,
};

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });

describe('[root] leak canaries through the test-min build', () => {
  let work: string;
  let scratchHost: string;
  let hostPub: string;
  let mounted: string | undefined;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hnforge-canary-'));
    scratchHost = join(work, 'host');
    await mkdir(join(scratchHost, 'etc/ssh'), { recursive: true });
    await mkdir(join(scratchHost, 'root'), { recursive: true });
    sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${CANARY.hostname}`, '-f', join(scratchHost, 'etc/ssh/ssh_host_ed25519_key')]);
    hostPub = (await readFile(join(scratchHost, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8')).split(' ')[1]!;
    await writeFile(join(scratchHost, 'root/.bash_history'), `ls\n${CANARY.history}\n`);
  });
  afterAll(async () => {
    if (mounted) execFileSync('umount', [mounted], { timeout: 60_000 });
    await rm(work, { recursive: true, force: true });
  });

  it('none of the canaries reaches the image; one planted in it fails the check naming the file', async () => {
    const out = join(work, 'out');
    // The namespace's own /etc/ssh, /root and hostname; the real host's files are never touched.
    const script = [
      'set -e',
      `mount --bind ${join(scratchHost, 'etc/ssh')} /etc/ssh`,
      `mount --bind ${join(scratchHost, 'root')} /root`,
      `hostname ${CANARY.hostname}`,
      `exec ${join(repoDir, 'bin/hnforge')} build --profile test-min --cache ${TEST_CACHE} --output ${out} --no-sidecar --json`,
    ].join('\n');
    const child = spawn('unshare', ['--mount', '--uts', '--propagation', 'private', 'sh', '-c', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CI: 'true', HNFORGE_MIRROR_PASSWORD: CANARY.mirrorPassword },
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.resume();
    const timer = setTimeout(() => child.kill('SIGTERM'), 900_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    clearTimeout(timer);
    expect(code, stderr.slice(-3000)).toBe(0);

    // The check searched for every canary (its log names what, never the value).
    const logs = join(TEST_CACHE, 'build/test-min/logs');
    const log = await readFile(join(logs, (await readdir(logs)).find((f) => f.endsWith('-leak-check.log'))!), 'utf8');
    for (const what of ["the build host's hostname", "SSH host key /etc/ssh/ssh_host_ed25519_key.pub", 'shell history /root/.bash_history', '$HNFORGE_MIRROR_PASSWORD']) expect(log).toContain(what);
    for (const secret of [...Object.values(CANARY), hostPub]) expect(log).not.toContain(secret);

    // An independent look: the raw image file holds none of them (ext4 stores file data as is).
    const image = join(out, 'test-min/hn-root.img');
    await writeFile(join(work, 'canaries'), [...Object.values(CANARY), hostPub].join('\n') + '\n');
    const found = await new Promise<number | null>((resolve) => spawn('grep', ['-q', '-a', '-F', '-f', join(work, 'canaries'), image]).on('exit', resolve));
    expect(found, `a canary in ${image}`).toBe(1);

    // Planted in a copy of the image: a failed check naming the file.
    const copy = join(work, 'planted.img');
    sh('cp', ['--sparse=always', image, copy]);
    const plant = join(work, 'history');
    await writeFile(plant, `${CANARY.history}\n`);
    await writeFile(join(work, 'debugfs.cmd'), `cd /root\nwrite ${plant} .bash_history\n`);
    sh('debugfs', ['-w', '-f', join(work, 'debugfs.cmd'), copy]);
    sh('e2fsck', ['-fn', copy]);
    mounted = join(work, 'mnt');
    await mkdir(mounted);
    sh('mount', ['-o', 'loop,ro', copy, mounted]);
    const profile = await resolveProfile(join(repoDir, 'profiles'), 'test-min');
    const { needles } = buildNeedles({ profile }, { root: scratchHost, hostname: CANARY.hostname }, { HNFORGE_MIRROR_PASSWORD: CANARY.mirrorPassword });
    const { hits, files } = await scanTree(mounted, needles);
    expect(files).toBeGreaterThan(1000);
    expect(hits.map((h) => `${h.path}: ${h.what}`)).toEqual([
      '/root/.bash_history: a line of the build host\'s shell history /root/.bash_history',
      '/root/.bash_history: a shell or REPL history',
    ]);
    const e = leakError(hits);
    expect(e).toBeInstanceOf(HnError);
    expect(e.message).toContain('/root/.bash_history');
    execFileSync('umount', [mounted], { timeout: 60_000 });
    mounted = undefined;
  });
});
