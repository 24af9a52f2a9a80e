// boot/hn-boot.sh's trial boots and rollback rules under busybox ash and dash,
// no qemu (test/boot/rollback.qemu.test.ts boots them for real): what a
// promotion writes for GRUB, what the initramfs does with each hn.trial state
// GRUB passes, "this boot failed" versus "this image is bad", hn_fail never
// returning, and the stale system-revert flag.

import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostpartsPerTest, runRotation, SHELLS, sidecarText, snapshot, type ShellRun } from './sh-harness.ts';

const A = 'IMAGE-A (previous)\n';
const B = 'IMAGE-B (current)\n';
const C = 'IMAGE-C (update)\n';

const hostpart = hostpartsPerTest();

const text = (r: ShellRun) => r.lines.join('\n');
/** One boot with GRUB's hn.trial state (and other variables) set as the kernel command line would. */
const rotate = (hp: string, sh: string[], vars: Record<string, string>, tail = 'hn_rotate || exit 1\necho "@@BOOT $HN_REAL_ROOT trial=$HN_TRIAL_ACTIVE"') =>
  runRotation(hp, { shell: sh, body: [...Object.entries(vars).map(([k, v]) => `${k}='${v}'`), tail].join('\n') });

for (const shell of SHELLS) {
  describe(`hn-boot.sh trial boots and rollback (${shell.name})`, () => {
    const sh = shell.argv;

    it('hn_fail never returns, even when the reboot does not happen', async () => {
      const hp = hostpart({ 'hn-root.img': B });
      const r = await runRotation(hp, { shell: sh, body: 'hn_reboot() { echo "@@REBOOT-RETURNED"; }\nhn_fail "test failure"\necho "@@AFTER"' });
      expect(text(r)).toContain('@@REBOOT-RETURNED');
      expect(text(r)).not.toContain('@@AFTER');
      expect(r.exitCode).toBe(1);
    });

    it('a promotion starts a trial when GRUB can count: hn-trial.cfg for GRUB (budget as x), a fresh trial log', async () => {
      const hp = hostpart({ 'hn-root.img': B, 'hn-root-new.img': C, 'hn-root-new.img.sha256': sidecarText(C, { version: '20261202.3' }) });
      const r = await rotate(hp, sh, { HN_TRIAL_STATE: 'off', HN_TRIAL_BUDGET: '3' });
      expect(r.outcome).toBe('reboot');
      const snap = snapshot(hp);
      expect(snap['hn-root.img']).toBe(C);
      expect(snap['hn-trial.cfg']).toMatch(/^set hn_trial_id=[0-9a-zA-Z]+$/m);
      expect(snap['hn-trial.cfg']).toMatch(/^set hn_trial_budget=xxx$/m);
      expect(snap['hn-trial.cfg']).toMatch(/^# hn-trial id=\S+ budget=3 version=20261202\.3 started=\S+$/m);
      expect(snap['hn-trial.log']).toMatch(/promoted version 20261202\.3: trial \S+, budget 3 boots/);
    });

    it('without a GRUB that counts (old grub.cfg, no grubenv) the update is promoted without a trial, and says so', async () => {
      for (const state of ['', 'nogrubenv']) {
        const hp = hostpart({ 'hn-root.img': B, 'hn-root-new.img': C, 'hn-root-new.img.sha256': sidecarText(C) });
        const r = await rotate(hp, sh, { HN_TRIAL_STATE: state });
        expect(r.outcome).toBe('reboot');
        expect(snapshot(hp)['hn-trial.cfg']).toBeUndefined();
        expect(text(r)).toMatch(/GRUB on this disk cannot count trial boots .*promoted without a trial/);
      }
    });

    it('a trial boot is marked for the watchdog and logged; an update arriving meanwhile waits', async () => {
      const hp = hostpart({ 'hn-root.img': B, 'hn-root-old.img': A, 'hn-root-new.img': C, 'hn-root-new.img.sha256': sidecarText(C) });
      await rotate(hp, sh, { HN_TRIAL_STATE: 'off', HN_REAL_ROOT: '/hn-root.img' }, 'hn_trial_start; echo done');
      const r = await rotate(hp, sh, { HN_TRIAL_STATE: 'xx' });
      expect(r.outcome).toBe('boot');
      expect(text(r)).toContain('@@BOOT /hn-root.img trial=2');
      expect(text(r)).toMatch(/trial boot 2 of 2 of hn-root.img .*initramfs reached/);
      expect(text(r)).toMatch(/hn-root-new.img waits: hn-root.img is on trial/);
      expect(snapshot(hp)['hn-root-new.img']).toBe(C);
      expect(snapshot(hp)['hn-trial.log']).toMatch(/trial boot 2 of 2/);
    });

    it('budget spent: GRUB booted the old image; the initramfs completes the revert and boots it without another reboot', async () => {
      const hp = hostpart({ 'hn-root.img': C, 'hn-root-old.img': B });
      await rotate(hp, sh, { HN_TRIAL_BUDGET: '2' }, 'hn_trial_start; hn_trial_note "trial boot 1 of 2 of hn-root.img: initramfs reached"; hn_trial_note "hn-health: FAIL on trial boot 1: docker: docker is not installed"');
      const r = await rotate(hp, sh, { HN_TRIAL_STATE: 'spent', HN_REAL_ROOT: '/hn-root-old.img' });
      expect(r.outcome, text(r)).toBe('boot');
      expect(text(r)).toContain('@@BOOT /hn-root.img trial=');
      const snap = snapshot(hp);
      expect(snap['hn-root.img']).toBe(B);
      expect(snap['hn-root-broken.img']).toBe(C);
      expect(snap['hn-root-old.img']).toBeUndefined();
      expect(snap['hn-trial.cfg']).toBeUndefined();
      expect(snap['hn-boot.log']).toMatch(/reverted: hn-root-old.img is now hn-root.img, the image it replaced is hn-root-broken.img; reason: the trial budget of 2 boots is spent without a confirmation; last report: hn-health: FAIL on trial boot 1: docker: docker is not installed/);
      // The next boot has nothing to do.
      expect((await rotate(hp, sh, { HN_TRIAL_STATE: 'off' })).outcome).toBe('boot');
      expect(snapshot(hp)['hn-root.img']).toBe(B);
    });

    it('budget spent with no trial boot reaching the initramfs: the reason says so (kernel panic, no host partition)', async () => {
      const hp = hostpart({ 'hn-root.img': C, 'hn-root-old.img': B });
      await rotate(hp, sh, {}, 'hn_trial_start');
      const r = await rotate(hp, sh, { HN_TRIAL_STATE: 'spent', HN_REAL_ROOT: '/hn-root-old.img' });
      expect(r.outcome).toBe('boot');
      expect(snapshot(hp)['hn-boot.log']).toMatch(/reason: the trial budget of 2 boots is spent without a confirmation; no trial boot reached the initramfs/);
    });

    it('GRUB fell back to the old image during a trial (it could not load the new kernel): revert, reason says so', async () => {
      const hp = hostpart({ 'hn-root.img': C, 'hn-root-old.img': B });
      await rotate(hp, sh, {}, 'hn_trial_start');
      const r = await rotate(hp, sh, { HN_TRIAL_STATE: 'x', HN_REAL_ROOT: '/hn-root-old.img' });
      expect(r.outcome).toBe('boot');
      expect(snapshot(hp)['hn-root.img']).toBe(B);
      expect(snapshot(hp)['hn-boot.log']).toMatch(/reason: GRUB booted hn-root-old.img during the trial/);
    });

    it('GRUB cannot count during a trial (nogrubenv): the trial ends in a revert, then a reboot into the old kernel', async () => {
      const hp = hostpart({ 'hn-root.img': C, 'hn-root-old.img': B });
      await rotate(hp, sh, {}, 'hn_trial_start');
      const r = await rotate(hp, sh, { HN_TRIAL_STATE: 'nogrubenv' });
      expect(r.outcome).toBe('reboot');
      expect(snapshot(hp)['hn-root.img']).toBe(B);
      expect(snapshot(hp)['hn-boot.log']).toMatch(/reason: GRUB cannot count this trial's boots \(no writable GRUB environment block/);
    });

    it('spent with no old image to go back to: the trial ends, the current image boots', async () => {
      const hp = hostpart({ 'hn-root.img': C });
      await rotate(hp, sh, {}, 'hn_trial_start');
      const r = await rotate(hp, sh, { HN_TRIAL_STATE: 'spent' });
      expect(r.outcome).toBe('boot');
      expect(existsSync(join(hp, 'hn-trial.cfg'))).toBe(false);
      expect(text(r)).toMatch(/trial ended without a revert: no hn-root-old.img/);
    });

    it('a trial that already ended but GRUB saw it (stale directory): reboot into hn-root.img, nothing reverted', async () => {
      const hp = hostpart({ 'hn-root.img': C, 'hn-root-old.img': B });
      const r = await rotate(hp, sh, { HN_TRIAL_STATE: 'spent', HN_REAL_ROOT: '/hn-root-old.img' });
      expect(r.outcome).toBe('reboot');
      expect(snapshot(hp)).toMatchObject({ 'hn-root.img': C, 'hn-root-old.img': B });
    });

    it('power cut after step 6 (trial written, image not yet renamed): the next boot resumes the update with a fresh trial', async () => {
      const hp = hostpart({ 'hn-root.img': B, 'hn-root-new.img': C, 'hn-root-new.img.sha256': sidecarText(C) });
      const cut = await runRotation(hp, { shell: sh, stopAfter: 6, body: "HN_TRIAL_STATE=off\nhn_rotate" });
      expect(cut.outcome).toBe('powercut');
      const id1 = /hn_trial_id=(\S+)/.exec(readFileSync(join(hp, 'hn-trial.cfg'), 'utf8'))![1];
      expect(snapshot(hp)['hn-root.img']).toBe(B);
      // GRUB counted that boot as a trial boot of the unchanged image: the initramfs sees the update still waiting.
      const r = await rotate(hp, sh, { HN_TRIAL_STATE: 'x' });
      expect(r.outcome).toBe('reboot');
      expect(text(r)).toMatch(/resuming an interrupted update/);
      expect(snapshot(hp)).toMatchObject({ 'hn-root.img': C, 'hn-root-old.img': B });
      expect(/hn_trial_id=(\S+)/.exec(readFileSync(join(hp, 'hn-trial.cfg'), 'utf8'))![1]).not.toBe(id1);
    });

    it('a stale system-revert flag with no old image does not set a waiting update aside: the update proceeds', async () => {
      const hp = hostpart({ 'hn-root.img': B, 'system-revert': '', 'hn-root-new.img': C, 'hn-root-new.img.sha256': sidecarText(C) });
      const r = await runRotation(hp, { shell: sh });
      expect(r.outcome).toBe('reboot');
      const snap = snapshot(hp);
      expect(snap['hn-root.img']).toBe(C);
      expect(snap['hn-root-new.img.skipped']).toBeUndefined();
      expect(snap['system-revert']).toBeUndefined();
      expect(text(r)).toMatch(/no hn-root-old.img to go back to/);
    });

    const mountBody = (loopReady: boolean) => [
      'mount() { return 1; }',
      'umount() { :; }',
      `hn_loop_ready() { ${loopReady ? 'return 0' : 'return 1'}; }`,
      'hn_image_fs_known() { return 0; }',
      `hn_mount_image "$HN_HP/newroot"`,
    ].join('\n');

    it('this boot failed (no loop support): reboot, no image demoted', async () => {
      const hp = hostpart({ 'hn-root.img': C, 'hn-root-old.img': B });
      const r = await runRotation(hp, { shell: sh, body: mountBody(false) });
      expect(r.outcome).toBe('reboot');
      expect(text(r)).toMatch(/this boot failed, not the image: no loop device support/);
      expect(snapshot(hp)).toEqual({ 'hn-root.img': C, 'hn-root-old.img': B });
    });

    it('this image is bad (its filesystem does not mount, loop support present): revert at once', async () => {
      const hp = hostpart({ 'hn-root.img': C, 'hn-root-old.img': B });
      const r = await runRotation(hp, { shell: sh, body: mountBody(true) });
      expect(r.outcome).toBe('reboot');
      const snap = snapshot(hp);
      expect(snap['hn-root.img']).toBe(B);
      expect(snap['hn-root-broken.img']).toBe(C);
      expect(snap['hn-boot.log']).toMatch(/reason: hn-root.img is unusable: loop mount of .* failed/);
    });
  });
}
