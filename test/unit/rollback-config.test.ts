// The rollback's configuration as data: the profile fields (defaults, refusals),
// what the image carries for GRUB and the initramfs (kernel arguments), hn-health's
// configuration file, the node files list, and GRUB's trial count script.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DEFAULT_HEALTH_CHECKS, EFI_FILES, HOSTPART_FILES } from '../../pipeline/boot/contract.ts';
import { grubConfig, grubEnvBlock, imageKernelArgs } from '../../pipeline/boot/grub.ts';
import { HnError } from '../../pipeline/errors.ts';
import { NODE_FILES } from '../../pipeline/node-files.ts';
import { resolveProfile } from '../../pipeline/profiles.ts';
import { run } from '../../pipeline/seam/run.ts';
import { healthConfText } from '../../stages/node-tools.ts';
import { hnforge } from '../support/cli.ts';

const repo = join(import.meta.dirname, '../..');
const profiles = join(repo, 'profiles');

describe('rollback configuration', () => {
  it('profiles: trial budget 2 and timeout 600 s by default; hn-debian checks the issue\'s defaults, test-min only what it has', async () => {
    const debian = await resolveProfile(profiles, 'hn-debian');
    expect(debian.boot.trial).toEqual({ budget: 2, timeoutSec: 600 });
    expect(debian.health.checks).toEqual([...DEFAULT_HEALTH_CHECKS]);
    expect(debian.health.checks).not.toContain('warehouse');
    const min = await resolveProfile(profiles, 'test-min');
    expect(min.health.checks).toEqual(['hostpart', 'data0']);
    expect(min.boot.modules).toContain('softdog');
  });

  it('profiles: a budget of 0 or an unknown check is refused with the field named', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hnprof-rollback-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    await cp(profiles, dir, { recursive: true });
    const bad = async (yaml: string) => {
      await writeFile(join(dir, 'bad.yaml'), `name: bad\nextends: test-min\ndescription: x\n${yaml}`);
      try {
        await resolveProfile(dir, 'bad');
      } catch (e) {
        return e as HnError;
      }
      throw new Error('accepted');
    };
    expect((await bad('boot:\n  trial:\n    budget: 0\n')).message).toMatch(/boot\.trial\.budget/);
    expect((await bad('health:\n  checks: [hostpart, ping]\n')).message).toMatch(/health\.checks/);
  });

  it('the image carries its trial policy as kernel arguments after the profile\'s own', () => {
    expect(imageKernelArgs({ kernelArgs: ['console=ttyS0'], trial: { budget: 3, timeoutSec: 900 } })).toEqual(['console=ttyS0', 'hn.trial_budget=3', 'hn.trial_timeout=900']);
  });

  it('hn-health.conf is KEY="value" lines hn-health parses', () => {
    expect(healthConfText({ checks: ['hostpart', 'docker'], waitSec: 30 })).toMatch(/^HN_HEALTH_CHECKS="hostpart docker"\nHN_HEALTH_WAIT="30"\n$/m);
  });

  it('hn-health, its unit (enabled in multi-user.target) and hn-status are node files, and exist', () => {
    const byTarget = Object.fromEntries(NODE_FILES.map((f) => [f.target, f]));
    expect(byTarget['/usr/sbin/hn-health']).toMatchObject({ source: 'boot/hn-health', mode: 0o755 });
    expect(byTarget['/usr/sbin/hn-status']).toMatchObject({ source: 'boot/hn-status', mode: 0o755 });
    expect(byTarget['/usr/lib/systemd/system/hn-health.service']).toMatchObject({ wantedBy: 'multi-user.target' });
    for (const f of NODE_FILES) expect(existsSync(join(repo, f.source)), f.source).toBe(true);
  });

  it('grub.cfg counts trial boots with save_env before any entry, and every entry passes hn.trial', () => {
    const cfg = grubConfig();
    const menu = cfg.indexOf('menuentry');
    expect(cfg.indexOf(`source ($root)/${HOSTPART_FILES.trial}`)).toBeLessThan(menu);
    expect(cfg.indexOf(`save_env --file ($hnefi)/${EFI_FILES.grubEnv} hn_trial_seen hn_trial_tries`)).toBeLessThan(menu);
    expect(cfg).toContain('set hn_trial_tries="${hn_trial_tries}x"');
    expect(cfg).toMatch(/if \[ -f \(\$root\)\/hn-root-old.img \]; then set default=1; fi/);
    expect(cfg).toContain('export hn_trial_arg');
    expect(cfg.split('menuentry ').slice(1, 3).every((e) => e.includes('$hn_kernel_args $hn_trial_arg'))).toBe(true);
  });

  it("provision's grubenv is what grub-editenv create writes", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hn-grubenv-'));
    try {
      await run({ file: 'grub-editenv', args: [join(dir, 'env'), 'create'], timeoutMs: 10_000 });
      expect(grubEnvBlock().equals(await readFile(join(dir, 'env')))).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('[root] hnforge status: a missing disk and a file that is no node disk are one line each, exit 2', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hn-status-usage-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const missing = await hnforge(['status', '--disk', join(dir, 'nope')], { timeoutMs: 60_000 });
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe(`hnforge: error: --disk ${join(dir, 'nope')}: no such disk or disk image file`);
    await writeFile(join(dir, 'zeros'), Buffer.alloc(1 << 20));
    const notDisk = await hnforge(['status', '--disk', join(dir, 'zeros'), '--json'], { timeoutMs: 60_000 });
    expect(notDisk.code).toBe(2);
    expect(notDisk.stderr.trim()).toMatch(/^hnforge: error: --disk \S+: no GPT with EFI-BOOT \(1\) and hostpart \(2\): not a disk hnforge provision made$/);
    expect(notDisk.stderr).not.toMatch(/\n\s+at /);
  });
});
