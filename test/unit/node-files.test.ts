// pipeline/node-files.ts, the one list of what runs on a node: every file it
// names is in boot/, executable where it is a program, a shell program passes
// shellcheck, every unit passes systemd-analyze verify (with the profile's
// timer drop-in applied); and the texts the node-tools stage writes.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGE_PATHS } from '../../pipeline/boot/contract.ts';
import { NODE_FILES, fileNameOf, isUnit, nodeFilesList } from '../../pipeline/node-files.ts';
import { instantiateConfText, timerScheduleDropIn, updateConfText, warehouseMountUnit } from '../../stages/node-tools.ts';
import { repoDir } from '../support/cli.ts';
import { SYSTEMD_ANALYZE, verifyUnits } from '../support/systemd-analyze.ts';

const SHELLCHECK = ['/usr/bin/shellcheck', '/bin/shellcheck'].find((p) => existsSync(p));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hn-node-files-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the node files list', () => {
  it('names files of boot/ only, with absolute targets, unique names, programs executable', async () => {
    expect(new Set(NODE_FILES.map(fileNameOf)).size).toBe(NODE_FILES.length);
    for (const f of NODE_FILES) {
      expect(f.source).toMatch(/^boot\//);
      expect(f.target).toMatch(/^\/usr\//);
      const st = await stat(join(repoDir, f.source));
      if (f.mode & 0o111) expect(st.mode & 0o100, `${f.source} is executable in the repository`).not.toBe(0);
    }
  });

  it('is written for the Gentoo package one file per line', () => {
    const text = nodeFilesList();
    expect(text.trim().split('\n')).toHaveLength(NODE_FILES.length);
    expect(text).toContain('0755 /usr/sbin/hn-update hn-update\n');
  });

  it.skipIf(!SHELLCHECK)('shell programs pass shellcheck', () => {
    for (const f of NODE_FILES.filter((x) => x.mode & 0o111)) {
      const r = spawnSync(SHELLCHECK!, ['-s', 'sh', join(repoDir, f.source)], { encoding: 'utf8', timeout: 60_000 });
      expect(r.stdout, f.source).toBe('');
      expect(r.status).toBe(0);
    }
  });

  it.skipIf(!SYSTEMD_ANALYZE)('units pass systemd-analyze verify, the timer with the profile drop-in merged', async () => {
    const units = Object.fromEntries(await Promise.all(NODE_FILES.filter(isUnit).map(async (f) => [fileNameOf(f), await readFile(join(repoDir, f.source), 'utf8')] as const)));
    expect(Object.keys(units)).toEqual(expect.arrayContaining(['hn-update.service', 'hn-update.timer', 'hn-instantiate.service', 'hn-instantiate-sync.service', 'hn-health.service']));
    // The mount unit node-tools writes from a profile's instantiate.warehouse (hn-instantiate-sync is wanted by it).
    units['warehouse.mount'] = warehouseMountUnit({ what: '/hostpart/data', type: 'none', options: 'bind' });
    // verify checks that ExecStart's program exists: point it at the repository's copy.
    const here = (text: string) => NODE_FILES.filter((f) => f.mode & 0o111).reduce((t, f) => t.replaceAll(f.target, join(repoDir, f.source)), text);
    expect(await verifyUnits(dir, units, here)).toEqual([]);
    const merged = units['hn-update.timer']!.replace(/^OnCalendar=.*\nRandomizedDelaySec=.*$/m, timerScheduleDropIn({ schedule: '*-*-* 03:00:00', randomDelay: '30min' }).replace('[Timer]\nOnCalendar=\n', '').trim());
    expect(merged).toContain('OnCalendar=*-*-* 03:00:00\nRandomizedDelaySec=30min');
    expect(await verifyUnits(dir, { ...units, 'hn-update.timer': merged }, here)).toEqual([]);
    // The check can fail: a schedule systemd cannot parse is reported.
    expect(await verifyUnits(dir, { ...units, 'hn-update.timer': merged.replace('*-*-* 03:00:00', 'when-idle') }, here)).not.toEqual([]);
  });
});

describe('/etc/hn-update.conf', () => {
  it('holds the profile update section as KEY="value" lines, the keyring from the boot contract', () => {
    const text = updateConfText({ store: 'http://images.example/hn', channel: 'stable', schedule: 'daily', randomDelay: '1h', allowUnsigned: false });
    expect(text).toContain('HN_UPDATE_STORE="http://images.example/hn"\n');
    expect(text).toContain('HN_UPDATE_CHANNEL="stable"\n');
    expect(text).toContain(`HN_UPDATE_KEYRING="${IMAGE_PATHS.publishingKeyring}"\n`);
    expect(text).toContain('HN_UPDATE_ALLOW_UNSIGNED="no"\n');
    expect(updateConfText({ channel: 'nightly', schedule: 'daily', randomDelay: '1h', allowUnsigned: true })).toContain('HN_UPDATE_STORE=""\nHN_UPDATE_CHANNEL="nightly"');
  });
});

describe('/etc/hn-instantiate.conf and warehouse.mount', () => {
  it('hold the profile instantiate section; a cluster filesystem waits for the network, a bind does not', () => {
    expect(instantiateConfText({ statePath: 'hnforge/state', domain: 'dc1.example', xtreemfsDirs: ['dir1:32638', 'dir2:32638'], sshKeyTypes: ['ed25519', 'rsa'] })).toBe(
      '# Written by hnforge from the profile\'s instantiate section. hn-instantiate reads it.\nHN_STATE_PATH="hnforge/state"\nHN_DOMAIN="dc1.example"\nHN_XTREEMFS_DIRS="dir1:32638,dir2:32638"\nHN_KEY_TYPES="ed25519,rsa"\n',
    );
    expect(warehouseMountUnit({ what: 'dir1,dir2/volume', type: 'xtreemfs', options: 'allow_other' })).toContain('After=hn-instantiate.service\nWants=hn-instantiate.service\nAfter=network-online.target');
    expect(warehouseMountUnit({ what: '/hostpart/data', type: 'none', options: 'bind' })).not.toContain('network-online');
  });
});
