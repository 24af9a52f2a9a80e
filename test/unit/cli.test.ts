// The command line as a user meets it: help, exit codes, one-line errors, the dry run.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hnforge } from '../support/cli.ts';

describe('hnforge CLI', () => {
  it('--help lists the commands and the exit codes', async () => {
    const r = await hnforge(['--help']);
    expect(r.code).toBe(0);
    for (const word of ['build', 'profiles', 'profile <action> <name>', 'stages', '130  interrupted']) expect(r.stdout).toContain(word);
    const b = await hnforge(['build', '--help']);
    for (const word of ['--profile', '--dry-run', '--json', '--keep-going', '--from', '--only', '--output', '--cache']) expect(b.stdout).toContain(word);
  });

  it('usage mistakes: exit 2, one line, no stack trace', async () => {
    for (const args of [['build'], ['frobnicate'], ['build', '--profile', 'test-min', '--from', 'nope', '--dry-run'], ['build', '--profile', 'test-min', '--from', 'seal', '--only', 'seal'],
      ['clean'], ['clean', '--profile', '../etc'], ['clean', '--profile', 'nope', '--cache', '/nonexistent/hnforge-cache']]) {
      const r = await hnforge(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^hnforge: error: /);
    }
  });

  it('keygen: a fingerprint, a 0600 private key, a keyring file (gpgv accepts it: test/publish/signing.test.ts), never overwritten without --force', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hnkeygen-'));
    try {
      const r = await hnforge(['keygen', '--out', join(dir, 'keys'), '--json']);
      expect(r.code, r.stderr).toBe(0);
      const made = JSON.parse(r.stdout) as { fingerprint: string; privateKey: string; keyring: string };
      expect(made.fingerprint).toMatch(/^[0-9A-F]{40}$/);
      expect((await stat(made.privateKey)).mode & 0o777).toBe(0o600);
      expect((await stat(made.keyring)).size).toBeGreaterThan(0);
      const again = await hnforge(['keygen', '--out', join(dir, 'keys')]);
      expect(again.code).toBe(2);
      expect(again.stderr.trim()).toMatch(/^hnforge: error: not replacing .*pass --force/);
      const replaced = await hnforge(['keygen', '--out', join(dir, 'keys'), '--force', '--json']);
      expect(JSON.parse(replaced.stdout).fingerprint).not.toBe(made.fingerprint);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('clean needs root: exit 3, one line', async () => {
    const r = await hnforge(['clean', '--profile', 'test-min', '--cache', '/nonexistent/hnforge-cache'], { asNobody: true });
    expect(r.code).toBe(3);
    expect(r.stderr.trim()).toBe('hnforge: error: not running as root: releasing mounts, loop devices and processes needs root');
  });

  it('unknown profile: exit 3 naming the known ones', async () => {
    const r = await hnforge(['build', '--profile', 'nope', '--dry-run']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("unknown profile 'nope'; known profiles: ");
  });

  it('dry run prints the plan, the commands and the cache decisions, as a non-root user', async () => {
    const r = await hnforge(['build', '--profile', 'test-min', '--dry-run', '--cache', '/nonexistent/hnforge-cache'], { asNobody: true });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/debian-bootstrap\s+mutate\s+would-run\s+key [0-9a-f]{16}/);
    expect(r.stdout).toContain('$ mmdebstrap --mode=root --variant=minbase');
    expect(r.stdout).toContain('$ losetup --find --show');
    expect(r.stdout).toMatch(/seal\s+finish\s+would-run/);
  });

  it('--json dry run is machine-readable', async () => {
    const r = await hnforge(['build', '--profile', 'test-min', '--dry-run', '--json', '--cache', '/nonexistent/hnforge-cache']);
    const result = JSON.parse(r.stdout) as { ok: boolean; stages: { name: string; status: string; plan?: string[] }[] };
    expect(result.ok).toBe(true);
    expect(result.stages.map((s) => s.name)).toContain('debian-packages');
  });

  it('profiles, profile show, stages', async () => {
    expect((await hnforge(['profiles'])).stdout).toMatch(/^hn-debian\s+Hardware node on Debian/m);
    const show = await hnforge(['profile', 'show', 'hn-debian']);
    expect(show.stdout).toContain('sizeGiB: 15');
    expect(show.stdout).toContain('- docker.io');
    expect((await hnforge(['stages', '--profile', 'hn-debian'])).stdout).toMatch(/^debian-packages\s+.*\[mutate, root, checkpoint\]$/m);
  });
});
