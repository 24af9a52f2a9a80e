// boot/hn-health under busybox ash and dash, no qemu: a sandbox host partition,
// a PATH of busybox applets plus a fake docker, and the init-system hooks pointed
// away from the host (it is never frozen or rebooted). What a trial boot's
// pass and failure do to the host partition; outside a trial only a report.
import { describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HEALTH_EXIT } from '../../pipeline/boot/contract.ts';
import { run } from '../../pipeline/seam/run.ts';
import { REPO, SHELLS, tempDirsPerTest } from './sh-harness.ts';

const APPLETS = ['sed', 'awk', 'cut', 'date', 'tr', 'grep', 'timeout', 'sleep', 'cat', 'rm', 'sync', 'head', 'tail', 'find', 'uname', 'fsfreeze', 'printf', 'echo'];

const scratch = tempDirsPerTest('hn-health-');

function sandbox(checks: string, opts: { trial?: boolean; dockerUp?: boolean } = {}) {
  const d = scratch();
  const bin = join(d, 'bin');
  mkdirSync(bin);
  for (const a of APPLETS) symlinkSync('/bin/busybox', join(bin, a));
  writeFileSync(join(bin, 'docker'), `#!/bin/sh\n${opts.dockerUp === false ? 'exit 1' : 'echo 20.10.24'}\n`);
  chmodSync(join(bin, 'docker'), 0o755);
  const hp = join(d, 'hostpart');
  mkdirSync(hp);
  if (opts.trial) writeFileSync(join(hp, 'hn-trial.cfg'), '# hn-trial id=t1 budget=2 version=B started=x\nset hn_trial_id=t1\nset hn_trial_budget=xx\n');
  const runDir = join(d, 'run');
  mkdirSync(runDir);
  writeFileSync(join(runDir, 'trial'), 'boot=1 timeout=20\n');
  const conf = join(d, 'hn-health.conf');
  writeFileSync(conf, `HN_HEALTH_CHECKS="${checks}"\nHN_HEALTH_WAIT="0"\n`);
  return { d, hp, conf, env: { PATH: bin, HN_HP: hp, HN_HEALTH_RUN_DIR: runDir, HN_HEALTH_SYSTEMD_DIR: join(d, 'no-systemd') } };
}

async function health(sh: string[], s: ReturnType<typeof sandbox>, args: string[]) {
  const r = await run(
    { file: sh[0]!, args: [...sh.slice(1), join(REPO, 'boot/hn-health'), '--conf', s.conf, ...args], env: s.env, timeoutMs: 30_000 },
    { capture: true, okExitCodes: [0, 1, 2, 3] },
  );
  return r;
}
const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');

for (const shell of SHELLS) {
  describe(`hn-health (${shell.name})`, () => {
    const sh = shell.argv;

    it('all declared checks pass: exit 0; outside a trial nothing is written', async () => {
      const s = sandbox('docker');
      const r = await health(sh, s, ['--boot']);
      expect(r.exitCode).toBe(HEALTH_EXIT.ok);
      expect(r.stdout).toContain('HN-HEALTH check docker: ok');
      expect(existsSync(join(s.hp, 'hn-boot.log'))).toBe(false);
    });

    it('a trial boot that passes confirms: hn-trial.cfg removed, noted in both logs', async () => {
      const s = sandbox('docker', { trial: true });
      const r = await health(sh, s, ['--boot']);
      expect(r.exitCode).toBe(HEALTH_EXIT.ok);
      expect(existsSync(join(s.hp, 'hn-trial.cfg'))).toBe(false);
      expect(read(join(s.hp, 'hn-trial.log'))).toMatch(/hn-health: confirmed: all checks passed \(docker\) on trial boot 1/);
      expect(read(join(s.hp, 'hn-boot.log'))).toMatch(/confirmed/);
    });

    it('a trial boot that fails: the trial stays, the reason is noted, a reboot is asked for (exit 3 without systemd)', async () => {
      const s = sandbox('docker', { trial: true, dockerUp: false });
      const r = await health(sh, s, ['--boot']);
      expect(r.exitCode).toBe(HEALTH_EXIT.rebootNeeded);
      expect(existsSync(join(s.hp, 'hn-trial.cfg'))).toBe(true);
      expect(read(join(s.hp, 'hn-trial.log'))).toMatch(/hn-health: FAIL on trial boot 1: docker: dockerd does not answer \(docker version\); rebooting/);
    });

    it('a declared check whose software the image lacks fails (never skipped); outside a trial: reported, exit 1, no reboot', async () => {
      const s = sandbox('docker lxc qemu');
      const r = await health(sh, s, ['--boot']);
      expect(r.exitCode).toBe(HEALTH_EXIT.failed);
      expect(r.stdout).toMatch(/HN-HEALTH FAIL: lxc: LXC is not installed \(no lxc-checkconfig\); qemu: qemu-system-x86_64 is not installed/);
      expect(read(join(s.hp, 'hn-boot.log'))).toMatch(/FAIL \(no trial running: nothing to revert\)/);
    });

    it('an unknown check fails at once; a missing configuration is one usage line, exit 2', async () => {
      const s = sandbox('docker ping');
      const r = await health(sh, s, []);
      expect(r.exitCode).toBe(HEALTH_EXIT.failed);
      expect(r.stdout).toMatch(/ping: unknown check 'ping'/);
      const r2 = await run(
        { file: sh[0]!, args: [...sh.slice(1), join(REPO, 'boot/hn-health'), '--conf', join(s.d, 'nope')], env: s.env, timeoutMs: 30_000 },
        { capture: true, okExitCodes: [0, 1, 2, 3] },
      );
      expect(r2.exitCode).toBe(HEALTH_EXIT.usage);
    });
  });
}
