// `hnforge nightly` runs bin/hnforge once per step. These tests run the real
// CLI with HNFORGE_NIGHTLY_BIN pointing at a stand-in that records its argv and
// fails (or is killed, or waits) on a chosen step: step order, stop at a
// profile's first failure, the next profile still running, exit codes, the
// summary and JSON, the dry run, Ctrl-C reaching the running step.
//
// [contract]: the steps themselves (build, boot-test, publish, prune) are not
// run here; build and boot-test have their own tests, publish and prune are
// only spawned with the flags agreed for them.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hnforge } from '../support/cli.ts';

// Records "$*" one line per call, prints it, and misbehaves when "$*" contains $FAKE_HNFORGE_FAIL etc.
const FAKE = `#!/bin/sh
printf '%s\\n' "$*" >>"$FAKE_HNFORGE_LOG"
echo "fake hnforge: $*"
if [ -n "$FAKE_HNFORGE_FAIL" ]; then
  case "$*" in *"$FAKE_HNFORGE_FAIL"*) echo "hnforge: error: fake failure of $1" >&2; exit 3 ;; esac
fi
if [ -n "$FAKE_HNFORGE_KILL" ]; then
  case "$*" in *"$FAKE_HNFORGE_KILL"*) kill -KILL $$ ;; esac
fi
if [ -n "$FAKE_HNFORGE_WAIT" ]; then
  case "$*" in *"$FAKE_HNFORGE_WAIT"*)
    trap 'echo "fake hnforge: got TERM" >>"$FAKE_HNFORGE_LOG"; exit 130' TERM
    echo "fake hnforge: waiting"
    sleep 60 & wait
    exit 0 ;;
  esac
fi
exit 0
`;

let dir: string;
let fake: string;
let log: string;
const saved = { ...process.env };

async function nightly(args: string[], env: Record<string, string> = {}, opts: Parameters<typeof hnforge>[1] = {}) {
  // The helper passes our environment on to bin/hnforge, which passes it on to the stand-in.
  for (const k of ['FAKE_HNFORGE_FAIL', 'FAKE_HNFORGE_KILL', 'FAKE_HNFORGE_WAIT']) delete process.env[k];
  await rm(log, { force: true });
  Object.assign(process.env, { HNFORGE_NIGHTLY_BIN: fake, FAKE_HNFORGE_LOG: log, ...env });
  const r = await hnforge(['nightly', ...args], { timeoutMs: 120_000, ...opts });
  const calls = existsSync(log) ? (await readFile(log, 'utf8')).trim().split('\n') : [];
  return { ...r, calls };
}

describe('[contract] hnforge nightly runs each step as its own hnforge command', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hn-nightly-'));
    fake = join(dir, 'fake-hnforge');
    log = join(dir, 'calls');
    await writeFile(fake, FAKE, { mode: 0o755 });
  });

  afterAll(async () => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    await rm(dir, { recursive: true, force: true });
  });

  const out = () => join(dir, 'out');
  const steps = (p: string, extra: { keep?: number; channel?: string; key?: string } = {}) => [
    `build --profile ${p} --output ${out()} --store file:///srv/images --no-publish${extra.key ? ` --signing-key ${extra.key}` : ''}`,
    `boot-test --image ${out()}/${p}/hn-root.img`,
    `publish --image ${out()}/${p}/hn-root.img --store file:///srv/images --channel ${extra.channel ?? 'nightly'}${extra.key ? ` --signing-key ${extra.key}` : ''}`,
    `prune --keep ${extra.keep ?? 7} --store file:///srv/images --profile ${p}`,
  ];
  const base = () => ['--store', 'file:///srv/images', '--output', out()];

  it('--dry-run prints the commands in order and runs none of them', async () => {
    const r = await nightly(['--profile', 'hn-debian', '--profile', 'test-min', ...base(), '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.calls).toEqual([]);
    expect(r.stdout).toBe(
      ['# hn-debian', ...steps('hn-debian').map((s) => `${fake} ${s}`), '# test-min', ...steps('test-min').map((s) => `${fake} ${s}`)].join('\n') + '\n',
    );
    const json = await nightly(['--profile', 'hn-debian', ...base(), '--dry-run', '--json']);
    expect(json.calls).toEqual([]);
    const parsed = JSON.parse(json.stdout) as { ok: boolean; dryRun: boolean; profiles: { steps: { step: string; status: string }[] }[] };
    expect(parsed).toMatchObject({ ok: true, dryRun: true });
    expect(parsed.profiles[0]!.steps.map((s) => `${s.step}:${s.status}`)).toEqual(['build:planned', 'boot-test:planned', 'publish:planned', 'prune:planned']);
  });

  it('all steps pass: every profile runs build, boot-test, publish, prune in that order; exit 0; flags passed on', async () => {
    const key = join(dir, 'signing-key.asc');
    await writeFile(key, 'not read by the stand-in\n');
    const r = await nightly(['--profile', 'hn-debian', '--profile', 'test-min', ...base(), '--keep', '3', '--channel', 'beta', '--signing-key', key]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.calls).toEqual([...steps('hn-debian', { keep: 3, channel: 'beta', key }), ...steps('test-min', { keep: 3, channel: 'beta', key })]);
    expect(r.stdout).toMatch(/^profile\s+build\s+boot-test\s+publish\s+prune\s+result\n/);
    expect(r.stdout).toMatch(/\nhn-debian\s+ok [\d.]+s\s+ok [\d.]+s\s+ok [\d.]+s\s+ok [\d.]+s\s+ok\n/);
    expect(r.stdout).toMatch(/\ntest-min\s+ok [\d.]+s\s+ok [\d.]+s\s+ok [\d.]+s\s+ok [\d.]+s\s+ok\n/);
    // The children's output reaches the user, prefixed with profile and step.
    expect(r.stderr).toContain(`[test-min prune] fake hnforge: prune --keep 3`);
  });

  it('a failing step stops its profile, the next profile still runs, the exit code is 1, the summary names the failure', async () => {
    const r = await nightly(['--profile', 'hn-debian', '--profile', 'test-min', ...base()], { FAKE_HNFORGE_FAIL: `boot-test --image ${out()}/hn-debian/` });
    expect(r.code).toBe(1);
    expect(r.calls).toEqual([...steps('hn-debian').slice(0, 2), ...steps('test-min')]);
    expect(r.stdout).toMatch(/\nhn-debian\s+ok [\d.]+s\s+FAILED \(exit 3\)\s+skipped\s+skipped\s+FAILED\n/);
    expect(r.stdout).toMatch(/\ntest-min\s+ok [\d.]+s\s+ok [\d.]+s\s+ok [\d.]+s\s+ok [\d.]+s\s+ok\n/);
    expect(r.stdout).toContain(`  hn-debian boot-test: fake failure of boot-test\n    rerun: ${fake} boot-test --image ${out()}/hn-debian/hn-root.img\n`);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('hnforge: error:'));
    expect(errors).toEqual(['hnforge: error: nightly failed for hn-debian (boot-test); the summary above shows each failure and the command that reruns it']);
  });

  it('--json: every step with status and exit code on stdout, nothing else there; exit 1 when a profile failed', async () => {
    const r = await nightly(['--profile', 'test-min', '--profile', 'hn-debian', ...base(), '--json'], { FAKE_HNFORGE_FAIL: 'prune --keep 7 --store file:///srv/images --profile test-min' });
    expect(r.code).toBe(1);
    const parsed = JSON.parse(r.stdout) as { ok: boolean; profiles: { profile: string; ok: boolean; steps: { step: string; status: string; exitCode?: number; error?: string }[] }[] };
    expect(parsed.ok).toBe(false);
    expect(parsed.profiles.map((p) => [p.profile, p.ok, p.steps.map((s) => `${s.step}:${s.status}${s.exitCode !== undefined ? `:${s.exitCode}` : ''}`)])).toEqual([
      ['test-min', false, ['build:ok:0', 'boot-test:ok:0', 'publish:ok:0', 'prune:failed:3']],
      ['hn-debian', true, ['build:ok:0', 'boot-test:ok:0', 'publish:ok:0', 'prune:ok:0']],
    ]);
    expect(parsed.profiles[0]!.steps[3]!.error).toBe('fake failure of prune');
  });

  it('a step killed by a signal counts as failed (no exit status of its own) and stops only its profile', async () => {
    const r = await nightly(['--profile', 'hn-debian', '--profile', 'test-min', ...base()], { FAKE_HNFORGE_KILL: 'build --profile hn-debian' });
    expect(r.code).toBe(1);
    expect(r.calls).toEqual([steps('hn-debian')[0], ...steps('test-min')]);
    expect(r.stdout).toMatch(/\nhn-debian\s+FAILED\s+skipped\s+skipped\s+skipped\s+FAILED\n/);
    expect(r.stdout).toMatch(/hn-debian build: killed by SIGKILL/);
  });

  it('SIGTERM to nightly reaches the running step, the remaining steps and profiles are skipped, exit 130', async () => {
    let sent = false;
    const r = await nightly(['--profile', 'hn-debian', '--profile', 'test-min', ...base()], { FAKE_HNFORGE_WAIT: 'boot-test' }, {
      onStderr: (chunk, child) => {
        if (!sent && chunk.includes('fake hnforge: waiting')) {
          sent = true;
          child.kill('SIGTERM');
        }
      },
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    expect(r.calls).toEqual([...steps('hn-debian').slice(0, 2), 'fake hnforge: got TERM']);
    expect(r.stdout).toMatch(/\nhn-debian\s+ok [\d.]+s\s+FAILED \(exit 130\)\s+skipped\s+skipped\s+FAILED\n/);
    expect(r.stdout).toMatch(/\ntest-min\s+skipped\s+skipped\s+skipped\s+skipped\s+FAILED\n/);
    expect(r.stderr).toMatch(/hnforge: error: interrupted by SIGTERM/);
  });

  it('option mistakes are reported together, in one error, exit 2, before anything runs', async () => {
    const r = await nightly(['--profile', 'no-such-profile', '--store', 'ftp://example/x', '--keep', '0', '--channel', 'Nightly', '--signing-key', join(dir, 'missing.asc')]);
    expect(r.code).toBe(2);
    expect(r.calls).toEqual([]);
    const errors = r.stderr.trim().split('\n');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^hnforge: error: 5 problems with the nightly options: unknown profile 'no-such-profile'.*; --store ftp:\/\/example\/x: use file:\/\/\/path, s3:\/\/bucket\/prefix or oci:\/\/host\[:port\]\/repository; --keep 0: .*; --channel Nightly: use lower-case .*; --signing-key .*missing\.asc: cannot read this file/);
    const noStore = await nightly(['--profile', 'hn-debian']);
    expect(noStore.code).toBe(2);
    expect(noStore.stderr).toMatch(/^hnforge: error: Missing required argument: store/);
  });
});
