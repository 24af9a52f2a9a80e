// boot/hn-boot.sh under busybox ash (and dash, as a POSIX check), no qemu:
// every rule of the rotation, and a power cut after every numbered step
// followed by fresh boots on whatever state the cut left.

import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync, writeFileSync, linkSync } from 'node:fs';
import { join } from 'node:path';
import {
  bootUntilSettled, inode, hostpartsPerTest, runRotation, SHELLS, sidecarText, snapshot,
} from './sh-harness.ts';
import { parseSidecar } from '../../pipeline/boot/sidecar.ts';

const A = 'IMAGE-A (previous)\n';
const B = 'IMAGE-B (current)\n';
const C = 'IMAGE-C (update)\n';

const hostpart = hostpartsPerTest();

function assertInvariants(hp: string, mustExist: string[]) {
  const snap = snapshot(hp);
  // A bootable hn-root.img at every instant, holding one of the known images.
  expect(snap['hn-root.img'], `hn-root.img missing; files: ${Object.keys(snap).join(' ')}`).toBeDefined();
  // No image content is lost (each one is still reachable under some name).
  const contents = new Set(Object.values(snap));
  for (const c of mustExist) expect(contents.has(c), `content lost: ${c.trim()} in ${JSON.stringify(snap)}`).toBe(true);
  expect(readFileSync(join(hp, 'data/precious'), 'utf8')).toBe('user data\n');
}

for (const shell of SHELLS) {
  describe(`hn-boot.sh rotation rules (${shell.name})`, () => {
    const sh = shell.argv;

    it('boots the current image when there is nothing to do', async () => {
      const hp = hostpart({ 'hn-root.img': B });
      const r = await runRotation(hp, { shell: sh });
      expect(r.outcome).toBe('boot');
      expect(snapshot(hp)).toEqual({ 'hn-root.img': B });
    });

    it('promotes a verified new image, keeps the previous as old, and reboots', async () => {
      const hp = hostpart({ 'hn-root.img': B, 'hn-root-old.img': A, 'hn-root-new.img': C, 'hn-root-new.img.sha256': sidecarText(C) });
      const r = await runRotation(hp, { shell: sh });
      expect(r.outcome).toBe('reboot');
      const snap = snapshot(hp);
      expect(snap['hn-root.img']).toBe(C);
      expect(snap['hn-root-old.img']).toBe(B);
      expect(snap['hn-root-new.img']).toBeUndefined();
      expect(snap['hn-root-new.img.sha256']).toBeUndefined();
      expect(r.lines.join('\n')).toMatch(/updated: hn-root-new.img is now hn-root.img/);
      // The next boot has nothing to do and stays on the new image.
      const again = await runRotation(hp, { shell: sh });
      expect(again.outcome).toBe('boot');
      expect(snapshot(hp)['hn-root.img']).toBe(C);
    });

    it('promotes an image whose sidecar has no newline after its last line (the TypeScript parser accepts it too)', async () => {
      const text = sidecarText(C).replace(/\n$/, '');
      expect(parseSidecar(text).size).toBe(C.length);
      const hp = hostpart({ 'hn-root.img': B, 'hn-root-new.img': C, 'hn-root-new.img.sha256': text });
      const r = await runRotation(hp, { shell: sh });
      expect(r.lines.join('\n')).not.toMatch(/set aside/);
      expect(r.outcome).toBe('reboot');
      expect(snapshot(hp)['hn-root.img']).toBe(C);
    });

    it.each([
      ['truncated', C.slice(0, 5), sidecarText(C), /size 5 bytes, expected/],
      ['corrupt (same size)', C.replace('C', 'X'), sidecarText(C), /sha256 mismatch/],
      ['without a sidecar', C, undefined, /no checksum file/],
      ['with an unknown sidecar format', C, 'format=other\nsize=1\n', /unknown format/],
      ['with a malformed sha256', C, `format=hnforge-sidecar-1\nsize=${C.length}\nsha256=xyz\n`, /no valid sha256/],
    ])('sets aside a new image %s, reports it and boots the current one', async (_what, content, sidecar, reason) => {
      const files: Record<string, string> = { 'hn-root.img': B, 'hn-root-new.img': content };
      if (sidecar !== undefined) files['hn-root-new.img.sha256'] = sidecar;
      const hp = hostpart(files);
      const r = await runRotation(hp, { shell: sh });
      expect(r.outcome).toBe('boot');
      const snap = snapshot(hp);
      expect(snap['hn-root.img']).toBe(B);
      expect(snap['hn-root-new.img']).toBeUndefined();
      expect(snap['hn-root-new.img.rejected']).toBe(content);
      expect(r.lines.join('\n')).toMatch(reason);
      expect(snap['hn-boot.log']).toMatch(/hn-root-new.img set aside as hn-root-new.img.rejected/);
    });

    it('hn.verify=size accepts a same-size image without hashing, still rejects a truncated one', async () => {
      const hp = hostpart({ 'hn-root.img': B, 'hn-root-new.img': C, 'hn-root-new.img.sha256': sidecarText(C) });
      expect((await runRotation(hp, { shell: sh, verify: 'size' })).outcome).toBe('reboot');
      const hp2 = hostpart({ 'hn-root.img': B, 'hn-root-new.img': 'short', 'hn-root-new.img.sha256': sidecarText(C) });
      expect((await runRotation(hp2, { shell: sh, verify: 'size' })).outcome).toBe('boot');
      expect(snapshot(hp2)['hn-root-new.img.rejected']).toBe('short');
    });

    it('reverts: old becomes current, current becomes broken, flag removed, reboot; next boot stays', async () => {
      const hp = hostpart({ 'hn-root.img': B, 'hn-root-old.img': A, 'system-revert': '' });
      const r = await runRotation(hp, { shell: sh });
      expect(r.outcome).toBe('reboot');
      const snap = snapshot(hp);
      expect(snap['hn-root.img']).toBe(A);
      expect(snap['hn-root-broken.img']).toBe(B);
      expect(snap['hn-root-old.img']).toBeUndefined();
      expect(snap['system-revert']).toBeUndefined();
      const again = await runRotation(hp, { shell: sh });
      expect(again.outcome).toBe('boot');
      expect(snapshot(hp)['hn-root.img']).toBe(A);
    });

    it('revert with no old image: removes the flag, reports, boots current, and a later update is not reverted', async () => {
      const hp = hostpart({ 'hn-root.img': B, 'system-revert': '' });
      const r = await runRotation(hp, { shell: sh });
      expect(r.outcome).toBe('boot');
      expect(existsSync(join(hp, 'system-revert'))).toBe(false);
      expect(r.lines.join('\n')).toMatch(/no hn-root-old.img to go back to/);
      // The seed's defect: a stale flag silently reverted the next update. Here the next update sticks.
      writeFileSync(join(hp, 'hn-root-new.img'), C);
      writeFileSync(join(hp, 'hn-root-new.img.sha256'), sidecarText(C));
      const runs = await bootUntilSettled(hp, { shell: sh });
      expect(runs.map((x) => x.outcome)).toEqual(['reboot', 'boot']);
      expect(snapshot(hp)['hn-root.img']).toBe(C);
    });

    it('revert plus an update waiting: revert wins, the update is set aside, never both in one boot', async () => {
      const hp = hostpart({ 'hn-root.img': B, 'hn-root-old.img': A, 'system-revert': '', 'hn-root-new.img': C, 'hn-root-new.img.sha256': sidecarText(C) });
      const runs = await bootUntilSettled(hp, { shell: sh });
      expect(runs.map((x) => x.outcome)).toEqual(['reboot', 'boot']);
      const snap = snapshot(hp);
      expect(snap['hn-root.img']).toBe(A);
      expect(snap['hn-root-broken.img']).toBe(B);
      expect(snap['hn-root-new.img.skipped']).toBe(C);
      expect(snap['hn-root-new.img.sha256.skipped']).toBeDefined();
      expect(snap['hn-root-new.img']).toBeUndefined();
    });

    it('cleans crash leftovers: extra links, a sidecar with no image', async () => {
      const hp = hostpart({ 'hn-root.img': B, 'hn-root-new.img.sha256': sidecarText(C) });
      linkSync(join(hp, 'hn-root.img'), join(hp, 'hn-root-old.img.tmp'));
      linkSync(join(hp, 'hn-root.img'), join(hp, 'hn-root-broken.img.tmp'));
      const r = await runRotation(hp, { shell: sh });
      expect(r.outcome).toBe('boot');
      expect(snapshot(hp)).toEqual({ 'hn-root.img': B });
    });

    it('booted through the fallback entry (real_root=/hn-root-old.img) with hn-root.img missing: restores it', async () => {
      const hp = hostpart({ 'hn-root-old.img': A });
      const r = await runRotation(hp, { shell: sh, realRoot: '/hn-root-old.img' });
      expect(r.outcome).toBe('boot');
      expect(r.lines.at(-1)).toBe('@@BOOT /hn-root.img');
      expect(snapshot(hp)['hn-root.img']).toBe(A);
    });

    it('booted through the fallback entry with hn-root.img present: touches nothing', async () => {
      const hp = hostpart({ 'hn-root.img': B, 'hn-root-old.img': A, 'hn-root-new.img': C, 'hn-root-new.img.sha256': sidecarText(C) });
      const before = snapshot(hp);
      const r = await runRotation(hp, { shell: sh, realRoot: '/hn-root-old.img' });
      expect(r.outcome).toBe('boot');
      expect(r.lines.at(-1)).toBe('@@BOOT /hn-root-old.img');
      expect(snapshot(hp)).toEqual(before);
    });

    it('an unusable current image with an old one: automatic revert and reboot', async () => {
      const hp = hostpart({ 'hn-root.img': B, 'hn-root-old.img': A });
      const r = await runRotation(hp, { shell: sh, body: 'hn_image_unusable "test: loop mount failed"; echo "@@RETURNED"' });
      expect(r.outcome).toBe('reboot');
      const snap = snapshot(hp);
      expect(snap['hn-root.img']).toBe(A);
      expect(snap['hn-root-broken.img']).toBe(B);
      expect(snap['system-revert']).toBeUndefined();
    });

    it('an unusable image and nothing to fall back to: message and reboot, never a prompt', async () => {
      const hp = hostpart({ 'hn-root.img': B });
      const r = await runRotation(hp, { shell: sh, body: 'hn_image_unusable "test: loop mount failed"; echo "@@RETURNED"' });
      expect(r.outcome).toBe('reboot');
      expect(r.lines.join('\n')).toMatch(/FAIL: no usable image.*\n.*FAIL outcome: reboot/);
    });

    it('the host partition not found: waits the timeout, says so, fails', async () => {
      const hp = hostpart({});
      const r = await runRotation(hp, {
        shell: sh,
        body: 'HN_TIMEOUT=1; HN_HOSTPART=LABEL=hn-no-such-label-$$; usleep() { :; }; hn_wait_hostpart || hn_fail "no host partition"',
      });
      expect(r.outcome).toBe('reboot');
      expect(r.lines.join('\n')).toMatch(/host partition LABEL=hn-no-such-label-\d+ not found after 1 s/);
    });

    it('parses the seed kernel command line', async () => {
      const hp = hostpart({});
      const cmdline = join(hp, 'cmdline');
      writeFileSync(cmdline, 'BOOT_IMAGE=(loop)/boot/kernel root=/dev/ram0 real_root=/hn-root.img raw_loop_root_host_partition=LABEL=hostpart ro hn.test.stop_after=3 hn.hostpart_timeout=7 hn.onfail=poweroff\n');
      const r = await runRotation(hp, {
        shell: sh,
        body: `HN_CMDLINE_FILE='${cmdline}'; hn_parse_cmdline; echo "$HN_HOSTPART|$HN_REAL_ROOT|$HN_STOP_AFTER|$HN_TIMEOUT|$HN_ONFAIL|$HN_ROOT_MODE"`,
      });
      expect(r.lines.at(-1)).toBe('LABEL=hostpart|/hn-root.img|3|7|poweroff|ro');
    });
  });
}

// The power-cut matrix: for each numbered step N of each scenario, run the
// logic until it cuts the power after step N, check the invariants on what is
// left, then boot again (as many times as the logic reboots) and check the
// end state is the one an uninterrupted run reaches.
interface Scenario {
  name: string;
  files: () => Record<string, string>;
  steps: number[];
  /** Contents that must never disappear. */
  keep: string[];
  end: Record<string, string | undefined>;
}

const SCENARIOS: Scenario[] = [
  {
    name: 'update',
    files: () => ({ 'hn-root.img': B, 'hn-root-old.img': A, 'hn-root-new.img': C, 'hn-root-new.img.sha256': sidecarText(C) }),
    steps: [1, 2, 3, 4, 5],
    keep: [B, C],
    end: { 'hn-root.img': C, 'hn-root-old.img': B, 'hn-root-new.img': undefined },
  },
  {
    name: 'first update (no old image yet)',
    files: () => ({ 'hn-root.img': B, 'hn-root-new.img': C, 'hn-root-new.img.sha256': sidecarText(C) }),
    steps: [1, 2, 3, 4, 5],
    keep: [B, C],
    end: { 'hn-root.img': C, 'hn-root-old.img': B },
  },
  {
    name: 'revert',
    files: () => ({ 'hn-root.img': B, 'hn-root-old.img': A, 'system-revert': '' }),
    steps: [12, 13, 14, 15],
    keep: [A, B],
    end: { 'hn-root.img': A, 'hn-root-broken.img': B, 'system-revert': undefined, 'hn-root-old.img': undefined },
  },
  {
    name: 'revert with an update waiting',
    files: () => ({ 'hn-root.img': B, 'hn-root-old.img': A, 'system-revert': '', 'hn-root-new.img': C, 'hn-root-new.img.sha256': sidecarText(C) }),
    steps: [11, 12, 13, 14, 15],
    keep: [A, B, C],
    end: { 'hn-root.img': A, 'hn-root-broken.img': B, 'hn-root-new.img.skipped': C, 'hn-root-new.img': undefined, 'system-revert': undefined },
  },
  {
    name: 'bad update set aside',
    files: () => ({ 'hn-root.img': B, 'hn-root-new.img': 'IMAGE-C trunc', 'hn-root-new.img.sha256': sidecarText(C) }),
    steps: [21],
    keep: [B],
    end: { 'hn-root.img': B, 'hn-root-new.img.rejected': 'IMAGE-C trunc', 'hn-root-new.img': undefined },
  },
];

for (const shell of SHELLS) {
  describe(`hn-boot.sh power cut after every step (${shell.name})`, () => {
    for (const sc of SCENARIOS) {
      it.each(sc.steps)(`${sc.name}: cut after step %i, then boot until settled`, async (n) => {
        const hp = hostpart(sc.files());
        const cut = await runRotation(hp, { shell: shell.argv, stopAfter: n });
        expect(cut.outcome, cut.lines.join('\n')).toBe('powercut');
        assertInvariants(hp, sc.keep);
        const runs = await bootUntilSettled(hp, { shell: shell.argv });
        for (const r of runs) expect(r.outcome, r.lines.join('\n')).not.toBe('error');
        expect(runs.at(-1)!.outcome).toBe('boot');
        assertInvariants(hp, sc.keep);
        const snap = snapshot(hp);
        for (const [name, content] of Object.entries(sc.end)) expect(snap[name], name).toBe(content);
        // No leftovers of the rotation itself.
        expect(readdirSync(hp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
        // After the update the old image is a true previous image, not a second link to the current one.
        if (snap['hn-root-old.img'] !== undefined) expect(inode(join(hp, 'hn-root-old.img'))).not.toBe(inode(join(hp, 'hn-root.img')));
      });
    }

    it('a cut after every step in turn, on the same disk (repeated crashes during one update)', async () => {
      const hp = hostpart({ 'hn-root.img': B, 'hn-root-old.img': A, 'hn-root-new.img': C, 'hn-root-new.img.sha256': sidecarText(C) });
      for (const n of [1, 2, 3, 4, 5]) {
        const r = await runRotation(hp, { shell: shell.argv, stopAfter: n });
        expect(['powercut', 'boot']).toContain(r.outcome);
        assertInvariants(hp, [C]);
      }
      await bootUntilSettled(hp, { shell: shell.argv });
      expect(snapshot(hp)['hn-root.img']).toBe(C);
    });
  });
}
