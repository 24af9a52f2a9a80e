// [qemu][root] One test-min image, booted as two nodes (different SMBIOS UUID
// and MAC): each gets its own hostname, machine-id, SSH host key and XtreemFS
// UUIDs, written to its record on the host partition and, through the
// /warehouse bind mount test-min declares, to the state repository. Then
// node A gets a fresh copy of the image (what an update brings: no identity
// in it) and a corrupt record file: it keeps its identity, prints one clear
// line for the corrupt file, falls back for that file and reaches userspace;
// then system-revert takes it back to the image it first booted, identity
// unchanged. One image build (cached), four boots (the first two in parallel).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { addReportUnit } from '../../pipeline/boot-test.ts';
import { IDENTITY } from '../../pipeline/boot/contract.ts';
import { provision } from '../../pipeline/provision.ts';
import { bootDisk, type BootResult } from '../../pipeline/qemu.ts';
import { bootCmd } from '../../pipeline/seam/boot-commands.ts';
import { cmd } from '../../pipeline/seam/command.ts';
import { run } from '../../pipeline/seam/run.ts';
import { hnforge } from '../support/cli.ts';
import { CACHE, catHostpart, copyDisk, debugfs, hostpartState, TEST_GRUB, type Disk } from './fixtures.ts';

const NODES = {
  a: { uuid: '6f1d7e2a-0c4b-4d8e-9a3f-1b2c3d4e5f60', mac: '52:54:00:aa:00:01' },
  b: { uuid: '0b9e8d7c-6a5f-4e3d-8c2b-1a0f9e8d7c6b', mac: '52:54:00:bb:00:02' },
};

// Printed by the booted node after hn-instantiate, before the report unit powers it off.
// Written through a fresh open of the serial port: the serial getty starting beside
// this unit hangs up the terminal, and a descriptor opened before that writes nowhere.
const IDENTITY_SCRIPT = `#!/bin/sh
x=/etc/xos/xtreemfs
echo >/dev/ttyS0 "HN-IDENTITY hostname=$(hostname) machine-id=$(cat /etc/machine-id) ssh=$(cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub) dir=$(sed -n 's/^uuid = //p' $x/dirconfig.properties) mrc=$(sed -n 's/^uuid = //p' $x/mrcconfig.properties) osd=$(sed -n 's/^uuid = //p' $x/osdconfig.properties) warehouse=$(awk '$2 == "/warehouse" { print $1 }' /proc/mounts | head -n 1) instantiate=$(systemctl is-active hn-instantiate.service)"
`;
const IDENTITY_UNIT = `[Unit]
Description=hnforge identity test report
After=hn-instantiate.service warehouse.mount hn-instantiate-sync.service
Before=hn-test-report.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/hn-test-identity

[Install]
WantedBy=multi-user.target
`;

async function addIdentityUnit(image: string, work: string) {
  await writeFile(join(work, 'hn-test-identity'), IDENTITY_SCRIPT, { mode: 0o755 });
  await writeFile(join(work, 'hn-test-identity.service'), IDENTITY_UNIT);
  for (const r of [
    `write ${join(work, 'hn-test-identity')} /usr/local/sbin/hn-test-identity`, 'sif /usr/local/sbin/hn-test-identity mode 0100755',
    `write ${join(work, 'hn-test-identity.service')} /etc/systemd/system/hn-test-identity.service`,
    'symlink /etc/systemd/system/multi-user.target.wants/hn-test-identity.service /etc/systemd/system/hn-test-identity.service',
  ]) await run(bootCmd.debugfs(image, r, true), { capture: true });
}

type Identity = Record<string, string>;
function identityOf(r: BootResult): Identity {
  const line = r.lines.find((l) => l.includes('HN-IDENTITY '));
  if (!line) throw new Error(`no HN-IDENTITY line (${r.end}):\n${r.lines.slice(-60).join('\n')}`);
  return Object.fromEntries(line.slice(line.indexOf('HN-IDENTITY ') + 12).split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

const machine = (n: { uuid: string; mac: string }) => ['-smbios', `type=1,uuid=${n.uuid}`, '-netdev', 'user,id=n0,restrict=on', '-device', `virtio-net-pci,netdev=n0,mac=${n.mac},romfile=`];

describe('[qemu][root] node identity: one image, two nodes, kept across a new image', { timeout: 1_500_000 }, () => {
  let work: string;
  let pristine: string;
  let diskA: Disk;
  let diskB: Disk;

  beforeAll(async () => {
    const out = join(CACHE, 'identity-out');
    const built = await hnforge(['build', '--profile', 'test-min', '--cache', CACHE, '--output', out, '--no-sidecar'], { timeoutMs: 1_200_000 });
    if (built.code !== 0) throw new Error(`building test-min failed (${built.code}): ${built.stderr.slice(-2000)}`);
    await mkdir(CACHE, { recursive: true });
    work = await mkdtemp(join(CACHE, 'qemu-identity-'));
    pristine = join(work, 'pristine.img');
    await run(cmd.copySparse(join(out, 'test-min/hn-root.img'), pristine));
    await addReportUnit(pristine, work);
    await addIdentityUnit(pristine, work);
    const copy = join(work, 'hn-root.img');
    await run(cmd.copySparse(pristine, copy));
    const p = await provision({
      disk: join(work, 'disk-a'), image: copy, hostpartFs: 'ext4', yes: true, sizeBytes: Math.ceil((statSync(copy).size * 2.2 + 2 ** 29) / 2 ** 20) * 2 ** 20,
      grub: TEST_GRUB, workDir: work,
    });
    diskA = { path: join(work, 'disk-a'), efiOffset: p.efiOffsetBytes!, hostpartOffset: p.hostpartOffsetBytes! };
    diskB = await copyDisk(diskA, join(work, 'disk-b'));
  }, 1_300_000);

  afterAll(async () => {
    if (work && process.env.HNFORGE_TEST_KEEP !== '1') await rm(work, { recursive: true, force: true });
  });

  let a: Identity;

  it('two nodes from one image: different hostnames, machine-ids, SSH host keys and XtreemFS UUIDs, each in its record and on /warehouse', async () => {
    const [ra, rb] = await Promise.all([
      bootDisk({ disk: diskA.path, logFile: join(work, 'serial-a.log'), timeoutMs: 600_000, memoryMiB: 768, machineArgs: machine(NODES.a) }),
      bootDisk({ disk: diskB.path, logFile: join(work, 'serial-b.log'), timeoutMs: 600_000, memoryMiB: 768, machineArgs: machine(NODES.b) }),
    ]);
    a = identityOf(ra);
    const b = identityOf(rb);
    for (const [r, n] of [[ra, NODES.a], [rb, NODES.b]] as const) {
      expect(r.end, r.lines.slice(-40).join('\n')).toBe('poweroff');
      expect(r.lines.join('\n')).toContain(`HN-INSTANTIATE: node id ${n.uuid} (from dmi-uuid)`);
    }
    // eslint-disable-next-line no-console
    console.log(`identity: A ${JSON.stringify(a)}\nB ${JSON.stringify(b)}\nboot A ${ra.durationMs} ms, B ${rb.durationMs} ms`);
    for (const k of ['hostname', 'machine-id', 'ssh', 'dir', 'mrc', 'osd']) {
      expect(a[k], k).toBeTruthy();
      expect(a[k], k).not.toBe(b[k]);
    }
    expect(a.instantiate).toBe('active');
    // /warehouse is a real mount (test-min binds /hostpart/data there).
    expect(a.warehouse).toMatch(/^\/dev\/vda2/);
    for (const [disk, n, id] of [[diskA, NODES.a, a], [diskB, NODES.b, b]] as const) {
      const rec = `/${IDENTITY.hostpartState}/nodes/${n.uuid}`;
      expect((await catHostpart(disk, `${rec}/machine-id`)).trim()).toBe(id['machine-id']);
      expect(await catHostpart(disk, `${rec}/node.conf`)).toContain(`hostname=${id.hostname}\n`);
      expect(await catHostpart(disk, `${rec}/xtreemfs.conf`)).toContain(`osd_uuid=${id.osd}\n`);
      expect(await catHostpart(disk, `${rec}/ssh_host_ed25519_key.pub`)).toContain(id.ssh!);
      // The warehouse copy (the bind's source is the host partition's data/).
      expect((await catHostpart(disk, `/data/hnforge/nodes/${n.uuid}/machine-id`)).trim()).toBe(id['machine-id']);
      expect(await hostpartState(disk)).toMatchObject({ clean: true, needsRecovery: false });
    }
  });

  it('node A with a fresh copy of the image and a corrupt network.conf: same identity, one clear line, a fallback, userspace reached', async () => {
    expect(a, 'the first test ran').toBeDefined();
    const bad = join(work, 'network.conf');
    await writeFile(bad, 'mode=static\nadress=10.9.9.9/24\n');
    const rec = `/${IDENTITY.hostpartState}/nodes/${NODES.a.uuid}`;
    // The image A booted (its /etc now holds A's identity) is replaced by the pristine one: what an update brings.
    // The image A booted is kept as hn-root-old.img (debugfs ln + unlink: a rename), for the revert below.
    await debugfs(diskA, ['rm /hn-root-old.img', 'ln /hn-root.img /hn-root-old.img', 'unlink /hn-root.img', `write ${pristine} /hn-root.img`, `rm ${rec}/network.conf`, `write ${bad} ${rec}/network.conf`, `rm /data/hnforge/nodes/${NODES.a.uuid}/network.conf`, `write ${bad} /data/hnforge/nodes/${NODES.a.uuid}/network.conf`], true);
    const r = await bootDisk({ disk: diskA.path, logFile: join(work, 'serial-a2.log'), timeoutMs: 600_000, memoryMiB: 768, machineArgs: machine(NODES.a) });
    expect(r.end, r.lines.slice(-40).join('\n')).toBe('poweroff');
    const again = identityOf(r);
    for (const k of ['hostname', 'machine-id', 'ssh', 'dir', 'mrc', 'osd']) expect(again[k], k).toBe(a[k]);
    const invalid = r.lines.filter((l) => l.includes('HN-INSTANTIATE: invalid record'));
    expect(invalid.length, r.lines.join('\n').slice(-3000)).toBeGreaterThan(0);
    expect(invalid[0]).toContain(`nodes/${NODES.a.uuid}/network.conf line 2: unknown key 'adress'`);
    expect(await catHostpart(diskA, `${rec}/log`)).toContain("INVALID network.conf line 2: unknown key 'adress'");
    expect(r.lines.some((l) => l.includes('HN-USERSPACE '))).toBe(true);
  });

  it('node A after system-revert (back to the image it first booted): the same identity', async () => {
    expect(a, 'the first test ran').toBeDefined();
    const flag = join(work, 'system-revert');
    await writeFile(flag, '');
    // The record is valid again: this boot checks the revert alone.
    const good = join(work, 'network-good.conf');
    await writeFile(good, 'mode=dhcp\n');
    const rec = `/${IDENTITY.hostpartState}/nodes/${NODES.a.uuid}`;
    await debugfs(diskA, [`write ${flag} /system-revert`, `rm ${rec}/network.conf`, `write ${good} ${rec}/network.conf`, `rm /data/hnforge/nodes/${NODES.a.uuid}/network.conf`, `write ${good} /data/hnforge/nodes/${NODES.a.uuid}/network.conf`], true);
    const r = await bootDisk({ disk: diskA.path, logFile: join(work, 'serial-a3.log'), timeoutMs: 900_000, memoryMiB: 768, machineArgs: machine(NODES.a) });
    expect(r.end, r.lines.slice(-40).join('\n')).toBe('poweroff');
    expect(r.lines.join('\n')).toMatch(/HN-BOOT: .*revert/i);
    const again = identityOf(r);
    for (const k of ['hostname', 'machine-id', 'ssh', 'dir', 'mrc', 'osd']) expect(again[k], k).toBe(a[k]);
    expect(r.lines.some((l) => l.includes('HN-INSTANTIATE: invalid record'))).toBe(false);
    expect(await hostpartState(diskA)).toMatchObject({ clean: true, needsRecovery: false });
  });
});
