// boot/hn-status under busybox ash and dash against a sandbox host partition:
// images (a file that is no ext4 image has version "unknown"; a waiting one
// its sidecar's), the trial with GRUB's count from a grubenv, the last revert
// and its reason; the JSON parses.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../pipeline/seam/run.ts';
import { REPO, SHELLS, tempDirsPerTest } from './sh-harness.ts';

const scratch = tempDirsPerTest('hn-status-');

function sandbox() {
  const hp = scratch();
  const files: Record<string, string> = {
    'hn-root.img': 'not an ext4 image\n',
    'hn-root-old.img': 'not an ext4 image either\n',
    'hn-root-new.img': 'waiting\n',
    'hn-root-new.img.sha256': 'format=hnforge-sidecar-1\nsize=8\nsha256=00\nversion=20261203.1\n',
    'hn-trial.cfg': '# hn-trial id=abc123 budget=2 version=20261202.2 started=2026-12-02T10:00:00Z\nset hn_trial_id=abc123\nset hn_trial_budget=xx\n',
    'hn-trial.log': '2026-12-02T10:00:00Z promoted version 20261202.2: trial abc123, budget 2 boots\n2026-12-02T10:01:00Z trial boot 1 of 2 of hn-root.img (version 20261202.2): initramfs reached\n',
    'hn-boot.log': '2026-11-30T09:00:00Z updated: x\n2026-12-01T08:00:00Z reverted: hn-root-old.img is now hn-root.img, the image it replaced is hn-root-broken.img; reason: the trial budget of 2 boots is spent without a confirmation; no trial boot reached the initramfs\n',
    grubenv: '# GRUB Environment Block\nhn_trial_seen=abc123\nhn_trial_tries=x\n',
  };
  for (const [n, c] of Object.entries(files)) writeFileSync(join(hp, n), c);
  return hp;
}

for (const shell of SHELLS) {
  describe(`hn-status (${shell.name})`, () => {
    const status = (hp: string, args: string[]) =>
      run({ file: shell.argv[0]!, args: [...shell.argv.slice(1), join(REPO, 'boot/hn-status'), '--hostpart', hp, '--grubenv', join(hp, 'grubenv'), ...args], timeoutMs: 30_000 }, { capture: true });

    it('text: images, the running trial with GRUB\'s count, the last revert and its reason', async () => {
      const hp = sandbox();
      const { stdout } = await status(hp, []);
      expect(stdout).toMatch(/^current +hn-root.img +unknown$/m);
      expect(stdout).toMatch(/^waiting +hn-root-new.img +20261203.1$/m);
      expect(stdout).toMatch(/^broken +hn-root-broken.img +-$/m);
      expect(stdout).toContain('trial: running: version 20261202.2, budget 2 boots, GRUB counted 1, initramfs reached 1; since 2026-12-02T10:00:00Z (id abc123)');
      expect(stdout).toContain('last revert: 2026-12-01T08:00:00Z: the trial budget of 2 boots is spent without a confirmation; no trial boot reached the initramfs');
    });

    it('--json parses and carries the same facts', async () => {
      const hp = sandbox();
      const j = JSON.parse((await status(hp, ['--json'])).stdout);
      expect(j.images).toEqual({ current: 'unknown', previous: 'unknown', broken: null, waiting: '20261203.1' });
      expect(j.trial).toEqual({ running: true, id: 'abc123', budget: 2, version: '20261202.2', started: '2026-12-02T10:00:00Z', grubBoots: 1, initramfsReached: 1 });
      expect(j.lastRevert).toEqual({ at: '2026-12-01T08:00:00Z', reason: 'the trial budget of 2 boots is spent without a confirmation; no trial boot reached the initramfs' });
    });
  });
}
