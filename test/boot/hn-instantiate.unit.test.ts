// boot/hn-instantiate under busybox ash and dash. A node is a few temporary
// directories: a fake /sys (DMI and NICs), the host partition, a plain
// directory standing for the /warehouse cluster mount, and the root the
// node's files are written to. Real ssh-keygen; no Node.js in the script.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDENTITY, INSTANTIATE_EXIT } from '../../pipeline/boot/contract.ts';
import { REPO, SHELLS } from './sh-harness.ts';

const SCRIPT = join(REPO, 'boot/hn-instantiate');
const UUID = '5a1f0c3e-9b2d-4e6f-8a7b-0c1d2e3f4a5b';
const STATE = 'hnforge/state';

interface Node {
  dir: string;
  sys: string;
  hp: string;
  wh: string;
  root: string;
  conf: string;
}

interface Run {
  code: number | null;
  out: string;
}

let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'hn-instantiate-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

let n = 0;
async function makeNode(opts: { uuid?: string; serial?: string; nics?: Record<string, { mac: string; physical: boolean }>; warehouse?: boolean } = {}): Promise<Node> {
  const dir = join(base, `node${n++}`);
  const node = { dir, sys: join(dir, 'sys'), hp: join(dir, 'hostpart'), wh: join(dir, 'warehouse'), root: join(dir, 'root'), conf: join(dir, 'hn-instantiate.conf') };
  await mkdir(join(node.sys, 'class/dmi/id'), { recursive: true });
  await mkdir(node.hp, { recursive: true });
  await mkdir(join(node.root, 'etc'), { recursive: true });
  await mkdir(node.wh, { recursive: true });
  if (opts.warehouse) await mkdir(join(node.wh, STATE), { recursive: true });
  if (opts.uuid !== undefined) await writeFile(join(node.sys, 'class/dmi/id/product_uuid'), `${opts.uuid}\n`);
  if (opts.serial !== undefined) await writeFile(join(node.sys, 'class/dmi/id/product_serial'), `${opts.serial}\n`);
  for (const [name, nic] of Object.entries(opts.nics ?? {})) {
    await mkdir(join(node.sys, 'class/net', name), { recursive: true });
    await writeFile(join(node.sys, 'class/net', name, 'address'), `${nic.mac}\n`);
    if (nic.physical) await mkdir(join(node.sys, 'class/net', name, 'device'));
  }
  await writeFile(node.conf, `HN_STATE_PATH="${STATE}"\nHN_XTREEMFS_DIRS="dir1.example:32638,dir2.example:32638"\n`);
  return node;
}

/** Only the first test makes every key type: RSA keys cost seconds on a loaded machine. */
function run(shell: string[], node: Node, args: string[] = [], env: Record<string, string> = { HN_INST_KEY_TYPES: 'ed25519' }): Run {
  const r = spawnSync(shell[0]!, [...shell.slice(1), SCRIPT, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HN_INST_ROOT: node.root, HN_INST_SYS: node.sys, HN_INST_HP: node.hp, HN_INST_WAREHOUSE: node.wh, HN_INST_CONF: node.conf, ...env },
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

const rec = (node: Node, where: 'hp' | 'wh', id = UUID) => (where === 'hp' ? join(node.hp, IDENTITY.hostpartState, 'nodes', id) : join(node.wh, STATE, 'nodes', id));
const read = (path: string) => readFile(path, 'utf8');
const mode = async (path: string) => ((await stat(path)).mode & 0o777).toString(8);
async function noTemporaries(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (e.name.includes('.hn-tmp.') || e.name.endsWith('.hn-new')) out.push(join(d, e.name));
    }
  };
  await walk(dir);
  return out;
}

describe.each(SHELLS)('hn-instantiate under $name', ({ argv: shell }) => {
  it('a new node: id from the DMI UUID, a record generated on the host partition (no /warehouse yet), every file written; a rerun changes nothing', async () => {
    const node = await makeNode({ uuid: UUID.toUpperCase(), serial: 'ABC123', nics: { eth0: { mac: '52:54:00:12:34:56', physical: true } } });
    const r = run(shell, node, ['--json'], {});
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`HN-INSTANTIATE: node id ${UUID} (from dmi-uuid)`);
    expect(r.out).toContain('not mounted');
    expect(JSON.parse(r.out.split('\n').find((l) => l.startsWith('{'))!)).toEqual({ id: UUID, source: 'dmi-uuid', hostname: 'hn-5a1f0c3e9b2d', fallback: false });
    const hp = rec(node, 'hp');
    expect((await readdir(hp)).sort()).toEqual(['log', 'machine-id', 'network.conf', 'node.conf', 'puppet.conf',
      'ssh_host_ecdsa_key', 'ssh_host_ecdsa_key.pub', 'ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub', 'ssh_host_rsa_key', 'ssh_host_rsa_key.pub', 'xtreemfs.conf']);
    expect(await read(join(hp, 'node.conf'))).toMatch(new RegExp(`^id=${UUID}\nid_source=dmi-uuid\nhostname=hn-5a1f0c3e9b2d\ncreated=`));
    expect(await mode(join(hp, 'ssh_host_ed25519_key'))).toBe('600');
    expect(await mode(join(node.hp, IDENTITY.hostpartState, 'cluster', IDENTITY.xtreemfsSecret))).toBe('600');
    // The node's files.
    const etc = join(node.root, 'etc');
    expect(await read(join(etc, 'hostname'))).toBe('hn-5a1f0c3e9b2d\n');
    const machineId = await read(join(etc, 'machine-id'));
    expect(machineId).toMatch(/^[0-9a-f]{32}\n$/);
    expect(machineId).toBe(await read(join(hp, 'machine-id')));
    expect(await read(join(node.root, IDENTITY.networkFile))).toContain('DHCP=yes');
    expect(await read(join(etc, 'ssh/ssh_host_ed25519_key'))).toBe(await read(join(hp, 'ssh_host_ed25519_key')));
    expect(await mode(join(etc, 'ssh/ssh_host_rsa_key'))).toBe('600');
    const x = await read(join(hp, 'xtreemfs.conf'));
    const uuids = [...x.matchAll(/_uuid=(\S+)/g)].map((m) => m[1]);
    expect(new Set(uuids).size).toBe(3);
    const osd = await read(join(node.root, IDENTITY.xtreemfsConfigDir, 'osdconfig.properties'));
    expect(osd).toContain(`uuid = ${uuids[2]}`);
    expect(osd).toContain('dir_service.host = dir1.example');
    expect(osd).toMatch(/capability_secret = [0-9a-f]{64}/);
    expect(await read(join(node.root, IDENTITY.xtreemfsConfigDir, 'dirconfig.properties'))).toContain(`uuid = ${uuids[0]}`);
    expect(await read(join(node.root, IDENTITY.puppetConf))).toBe('[main]\ncertname = hn-5a1f0c3e9b2d\n');
    expect(await noTemporaries(node.dir)).toEqual([]);

    // The same node again (an image update or a revert brings back an image without identity).
    await rm(join(node.root, 'etc'), { recursive: true });
    const again = run(shell, node, [], {});
    expect(again.code, again.out).toBe(0);
    expect(await read(join(etc, 'machine-id'))).toBe(machineId);
    expect(await read(join(etc, 'ssh/ssh_host_ed25519_key'))).toBe(await read(join(hp, 'ssh_host_ed25519_key')));
    expect(await read(join(node.root, IDENTITY.xtreemfsConfigDir, 'osdconfig.properties'))).toBe(osd);
  });

  it.each([
    ['a placeholder UUID falls back to the serial', { uuid: '03000200-0400-0500-0006-000700080009', serial: 'SRV 42/A', nics: {} }, 'serial-srv-42-a', 'serial'],
    ['no UUID, a placeholder serial: the lowest MAC of a physical NIC (not lo, not a bridge)', {
      serial: 'To be filled by O.E.M.',
      nics: { eth1: { mac: '52:54:00:00:00:09', physical: true }, eth0: { mac: '52:54:00:00:00:07', physical: true }, br0: { mac: '02:00:00:00:00:01', physical: false }, lo: { mac: '00:00:00:00:00:00', physical: false } },
    }, 'mac-525400000007', 'mac'],
  ])('%s', async (_, spec, id, source) => {
    const node = await makeNode(spec);
    const r = run(shell, node, [], { HN_INST_NOW: '2026-12-02T00:00:00Z', HN_INST_KEY_TYPES: 'ed25519' });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`node id ${id} (from ${source})`);
    expect(await read(join(rec(node, 'hp', id), 'node.conf'))).toContain(`id=${id}\nid_source=${source}\n`);
  });

  it('nothing identifies the node: one FAIL line, exit failed', async () => {
    const node = await makeNode({ nics: { lo: { mac: '00:00:00:00:00:00', physical: false } } });
    const r = run(shell, node);
    expect(r.code).toBe(INSTANTIATE_EXIT.failed);
    expect(r.out.trim()).toBe('HN-INSTANTIATE: FAIL: nothing identifies this node: no DMI product UUID or serial, no physical NIC');
  });

  it('a record pre-seeded on /warehouse (static address) is copied to the host partition, completed, and the completion saved to both', async () => {
    const node = await makeNode({ uuid: UUID, warehouse: true });
    const wh = rec(node, 'wh');
    await mkdir(wh, { recursive: true });
    await writeFile(join(wh, 'node.conf'), `id=${UUID}\nid_source=operator\nhostname=web-07\ndomain=dc1.example\n`);
    await writeFile(join(wh, 'network.conf'), '# set by the operator\nmode=static\naddress=10.0.0.7/24\ngateway=10.0.0.1\ndns=10.0.0.2 10.0.0.3\n');
    const r = run(shell, node);
    expect(r.code, r.out).toBe(0);
    expect(await read(join(node.root, 'etc/hostname'))).toBe('web-07\n');
    expect(await read(join(node.root, IDENTITY.networkFile))).toContain('[Network]\nAddress=10.0.0.7/24\nGateway=10.0.0.1\nDNS=10.0.0.2\nDNS=10.0.0.3\n');
    expect(await read(join(node.root, IDENTITY.puppetConf))).toContain('certname = web-07.dc1.example');
    for (const f of ['machine-id', 'xtreemfs.conf', 'ssh_host_ed25519_key', 'network.conf']) expect(await read(join(wh, f))).toBe(await read(join(rec(node, 'hp'), f)));
    expect(existsSync(join(node.wh, STATE, 'cluster', IDENTITY.xtreemfsSecret))).toBe(true);
  });

  it('sync conflicts: per file the newer write wins, a tie goes to /warehouse, each conflict logged; logs are merged', async () => {
    const node = await makeNode({ uuid: UUID, warehouse: true });
    expect(run(shell, node).code).toBe(0);
    const hp = rec(node, 'hp');
    const wh = rec(node, 'wh');
    const at = (s: number) => new Date(Date.UTC(2026, 11, 2, 12, 0, s));
    // network.conf: the host partition's edit is newer; node.conf: the warehouse's; puppet.conf: same second.
    await writeFile(join(hp, 'network.conf'), 'mode=static\naddress=10.1.0.5/16\n');
    await utimes(join(hp, 'network.conf'), at(30), at(30));
    await writeFile(join(wh, 'network.conf'), 'mode=dhcp\nmatch=eth0\n');
    await utimes(join(wh, 'network.conf'), at(10), at(10));
    await writeFile(join(hp, 'node.conf'), `id=${UUID}\nhostname=old-name\n`);
    await utimes(join(hp, 'node.conf'), at(10), at(10));
    await writeFile(join(wh, 'node.conf'), `id=${UUID}\nhostname=new-name\n`);
    await utimes(join(wh, 'node.conf'), at(40), at(40));
    await writeFile(join(hp, 'puppet.conf'), 'certname=from-hostpart\n');
    await writeFile(join(wh, 'puppet.conf'), 'certname=from-warehouse\n');
    await utimes(join(hp, 'puppet.conf'), at(20), at(20));
    await utimes(join(wh, 'puppet.conf'), at(20), at(20));
    const r = run(shell, node, ['--sync']);
    expect(r.code, r.out).toBe(0);
    for (const side of [hp, wh]) {
      expect(await read(join(side, 'network.conf'))).toBe('mode=static\naddress=10.1.0.5/16\n');
      expect(await read(join(side, 'node.conf'))).toBe(`id=${UUID}\nhostname=new-name\n`);
      expect(await read(join(side, 'puppet.conf'))).toBe('certname=from-warehouse\n');
    }
    const log = await read(join(hp, 'log'));
    expect(log).toBe(await read(join(wh, 'log')));
    expect(log).toMatch(/conflict nodes\/\S+\/network\.conf: host partition copy \(mtime \d+\) is newer than the warehouse copy \(mtime \d+\): host partition wins/);
    expect(log).toMatch(/conflict nodes\/\S+\/node\.conf: warehouse copy .* warehouse wins/);
    expect(log).toMatch(/conflict nodes\/\S+\/puppet\.conf: warehouse copy .*as new as.* warehouse wins/);
    // A line only one side had is kept in both.
    await writeFile(join(hp, 'log'), `${log}2026-12-02T13:00:00Z written while /warehouse was down\n`);
    expect(run(shell, node, ['--sync']).code).toBe(0);
    expect(await read(join(wh, 'log'))).toContain('written while /warehouse was down');
    // The node applies the merged record.
    expect(run(shell, node).code).toBe(0);
    expect(await read(join(node.root, 'etc/hostname'))).toBe('new-name\n');
    expect(await read(join(node.root, IDENTITY.networkFile))).toContain('Address=10.1.0.5/16');
  });

  it.each([
    ['network.conf', 'mode=static\nadress=10.0.0.9/24\n', "network.conf line 2: unknown key 'adress'", 'DHCP=yes'],
    ['network.conf', 'mode=static\n', 'network.conf: mode=static needs address=', 'DHCP=yes'],
    ['node.conf', `id=${UUID}\nhostname=Bad_Name\n`, "node.conf line 2: hostname='Bad_Name' does not match", 'hn-5a1f0c3e9b2d'],
    ['machine-id', 'not-an-id\n', 'machine-id line 1: not one line of 32 lowercase hex digits', undefined],
    ['xtreemfs.conf', 'dir_uuid=1\n', "xtreemfs.conf line 1: dir_uuid='1' does not match", undefined],
  ])('an invalid %s (%j): one console line naming file and line, a generated fallback for it, flagged in the record log, the file left as is', async (file, content, why, applied) => {
    const node = await makeNode({ uuid: UUID });
    expect(run(shell, node).code).toBe(0);
    const hp = rec(node, 'hp');
    const before = await read(join(node.root, 'etc/machine-id'));
    await writeFile(join(hp, file), content);
    const r = run(shell, node);
    expect(r.code, r.out).toBe(INSTANTIATE_EXIT.fallback);
    const lines = r.out.split('\n').filter((l) => l.includes('invalid record'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`HN-INSTANTIATE: invalid record: nodes/${UUID}/${why}`);
    expect(await read(join(hp, file))).toBe(content);
    expect(await read(join(hp, 'log'))).toContain(`INVALID ${why}`);
    if (file === 'network.conf') expect(await read(join(node.root, IDENTITY.networkFile))).toContain(applied);
    if (file === 'node.conf') expect(await read(join(node.root, 'etc/hostname'))).toBe(`${applied}\n`);
    if (file === 'machine-id') expect(await read(join(node.root, 'etc/machine-id'))).not.toBe(before);
    expect(await read(join(node.root, 'etc/machine-id'))).toMatch(/^[0-9a-f]{32}\n$/);
  });
});
