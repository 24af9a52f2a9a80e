// contrib/systemd: the nightly service and timer pass `systemd-analyze verify`
// with no warning at all (verify exits 0 on unknown keys and values it
// ignores, so any output counts as a finding), and the service's ExecStart,
// expanded the way systemd expands it with the example environment file, is a
// command line hnforge accepts (run with --dry-run).

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hnforge, repoDir } from '../support/cli.ts';
import { SYSTEMD_ANALYZE as ANALYZE, verifyUnits } from '../support/systemd-analyze.ts';

const units = join(repoDir, 'contrib/systemd');

let dir: string;

// verify checks that ExecStart's program exists: point it at this clone instead of /opt/hnforge.
const verify = (files: Record<string, string>) => verifyUnits(dir, files, (text) => text.replaceAll('/opt/hnforge/', `${repoDir}/`));

/** The environment file's KEY=value lines (comments and blanks skipped). */
function parseEnv(text: string): Record<string, string> {
  return Object.fromEntries(text.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/** systemd's expansion: ${VAR} is one word, $VAR alone is split at whitespace into zero or more words. */
function expandExecStart(line: string, env: Record<string, string>): string[] {
  return line.split(/\s+/).filter(Boolean).flatMap((word) => {
    const whole = /^\$([A-Za-z_]+)$/.exec(word);
    if (whole) return (env[whole[1]!] ?? '').split(/\s+/).filter(Boolean);
    return [word.replace(/\$\{([A-Za-z_]+)\}/g, (_, k: string) => env[k] ?? '')];
  });
}

describe.skipIf(!ANALYZE)('contrib/systemd nightly units', () => {
  let service: string;
  let timer: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hn-units-'));
    service = await readFile(join(units, 'hnforge-nightly.service'), 'utf8');
    timer = await readFile(join(units, 'hnforge-nightly.timer'), 'utf8');
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('systemd-analyze verify finds nothing in the service and the timer', async () => {
    expect(await verify({ 'hnforge-nightly.service': service, 'hnforge-nightly.timer': timer })).toEqual([]);
  });

  it('the check itself catches a unit systemd would half-ignore (unknown key, bad value)', async () => {
    const findings = await verify({
      'hnforge-nightly.service': service.replace('Type=oneshot', 'Type=oneshot-ish\nRestartSecs=5'),
      'hnforge-nightly.timer': timer,
    });
    expect(findings.join('\n')).toMatch(/Failed to parse service type/);
    expect(findings.join('\n')).toMatch(/Unknown key 'RestartSecs'/);
    expect(await verify({ 'hnforge-nightly.service': service, 'hnforge-nightly.timer': timer.replace(/^OnCalendar=.*$/m, 'OnCalendar=nightly-ish') })).not.toEqual([]);
  });

  it('a daily oneshot reading /etc/hnforge/nightly.env, the timer persistent with a random delay', () => {
    expect(service).toMatch(/^Type=oneshot$/m);
    expect(service).toMatch(/^EnvironmentFile=\/etc\/hnforge\/nightly\.env$/m);
    expect(service).toMatch(/^TimeoutStartSec=/m); // a oneshot is otherwise killed after 90 s
    expect(timer).toMatch(/^OnCalendar=\*-\*-\* \d\d:\d\d:\d\d$/m);
    expect(timer).toMatch(/^Persistent=true$/m);
    expect(timer).toMatch(/^RandomizedDelaySec=\S+$/m);
    // Mounts and loop devices must stay in the host's namespace (the next run's recovery finds them there).
    for (const key of ['ProtectSystem', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'ReadWritePaths', 'ProtectKernelModules', 'RestrictSUIDSGID', 'MemoryDenyWriteExecute']) {
      expect(service, key).not.toMatch(new RegExp(`^${key}=`, 'm'));
    }
    expect(service).toMatch(/^CapabilityBoundingSet=.*\bCAP_SYS_ADMIN\b.*\bCAP_MKNOD\b/m);
  });

  it('ExecStart with the example environment is a nightly command line hnforge accepts', async () => {
    const key = join(dir, 'signing-key.asc');
    await writeFile(key, 'read only for its existence in a dry run\n');
    const env: Record<string, string> = { ...parseEnv(await readFile(join(units, 'nightly.env.example'), 'utf8')), SIGNING_KEY: key };
    expect(Object.keys(env)).toEqual(expect.arrayContaining(['STORE', 'PROFILES', 'SIGNING_KEY']));
    const execStart = /^ExecStart=(.*)$/m.exec(service)![1]!;
    const argv = expandExecStart(execStart, { ...env, PROFILES: 'hn-debian test-min' });
    expect(argv[0]).toBe('/opt/hnforge/bin/hnforge');
    const r = await hnforge([...argv.slice(1), '--dry-run'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('# hn-debian\n');
    expect(r.stdout).toContain('# test-min\n');
    expect(r.stdout).toContain(` publish --image /var/lib/hnforge/out/hn-debian/hn-root.img --store ${env.STORE} --channel nightly --signing-key ${key}\n`);
    expect(r.stdout).toContain(' prune --keep 14 ');
  });
});
