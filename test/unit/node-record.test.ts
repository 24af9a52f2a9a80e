// Node records on the operator's side (pipeline/node-record.ts, `hnforge node`)
// and on the node's (boot/hn-instantiate) use one schema: a record the CLI
// adds is what the node applies; a record the node generates is valid for the
// CLI; both name the same file and line for the same mistake.

import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDENTITY } from '../../pipeline/boot/contract.ts';
import { addRecord, checkRecordFile, formatProblem, listRecords, readRecord } from '../../pipeline/node-record.ts';
import { REPO } from '../boot/sh-harness.ts';
import { hnforge } from '../support/cli.ts';

const UUID = '4c4c4544-0042-3510-8052-b4c04f4d4e31';
let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'hn-node-record-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

/** One boot of hn-instantiate (busybox ash) on a node whose /warehouse holds the state repository `repo`. */
async function bootNode(name: string, repo: string, uuid = UUID) {
  const dir = join(base, name);
  for (const d of ['sys/class/dmi/id', 'hostpart', 'root/etc', 'warehouse']) await mkdir(join(dir, d), { recursive: true });
  await writeFile(join(dir, 'sys/class/dmi/id/product_uuid'), `${uuid.toUpperCase()}\n`);
  await writeFile(join(dir, 'conf'), 'HN_STATE_PATH="state"\n');
  const r = spawnSync('/bin/busybox', ['sh', join(REPO, 'boot/hn-instantiate')], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HN_INST_ROOT: join(dir, 'root'), HN_INST_SYS: join(dir, 'sys'), HN_INST_HP: join(dir, 'hostpart'), HN_INST_WAREHOUSE: join(repo, '..'), HN_INST_CONF: join(dir, 'conf'), HN_INST_KEY_TYPES: 'ed25519' },
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}`, root: join(dir, 'root') };
}

describe('node records: one schema for the CLI and the node', () => {
  it('a record added by the operator is the one the node applies; the node completes it and the CLI reads the result as valid', async () => {
    const repo = join(base, 'wh1/state');
    await mkdir(repo, { recursive: true });
    await addRecord({ repo, id: UUID.toUpperCase(), hostname: 'web-07', domain: 'dc1.example', address: '10.0.0.7/24', gateway: '10.0.0.1', dns: ['10.0.0.2'] });
    const dir = join(repo, IDENTITY.nodesDir, UUID);
    expect(await readFile(join(dir, 'network.conf'), 'utf8')).toBe('mode=static\naddress=10.0.0.7/24\ngateway=10.0.0.1\ndns=10.0.0.2\n');
    const node = await bootNode('n1', repo);
    expect(node.code, node.out).toBe(0);
    expect(await readFile(join(node.root, 'etc/hostname'), 'utf8')).toBe('web-07\n');
    expect(await readFile(join(node.root, IDENTITY.networkFile), 'utf8')).toContain('Address=10.0.0.7/24\nGateway=10.0.0.1\nDNS=10.0.0.2\n');
    const r = await readRecord(repo, UUID);
    expect(r.problems).toEqual([]);
    expect(r.files['machine-id']!.machine_id).toMatch(/^[0-9a-f]{32}$/);
    expect(r.files['puppet.conf']!.certname).toBe('web-07.dc1.example');
    expect(r.sshKeys).toEqual(['ed25519']);
    expect(r.log.join('\n')).toContain('applied: hostname web-07');
    expect(((await stat(join(dir, 'ssh_host_ed25519_key'))).mode & 0o777).toString(8)).toBe('600');
    expect(await listRecords(repo)).toEqual([UUID]);
  });

  it.each([
    ['network.conf', 'mode=static\n# typo below\nadress=10.0.0.9/24\n'],
    ['node.conf', `id=${UUID}\nhostname=web_07\n`],
    ['xtreemfs.conf', 'dir_uuid=x\n'],
    ['machine-id', 'ABC\n'],
  ])('the same mistake in %s is named with the same file and line by the CLI and by the node', async (file, text) => {
    const [p] = checkRecordFile(file, text, UUID);
    expect(p).toBeDefined();
    const repo = join(base, `wh-${file}/state`);
    await mkdir(join(repo, IDENTITY.nodesDir, UUID), { recursive: true });
    await addRecord({ repo, id: UUID, hostname: 'web-08' });
    await writeFile(join(repo, IDENTITY.nodesDir, UUID, file), text);
    const node = await bootNode(`bad-${file}`, repo);
    expect(node.code).toBe(1);
    expect(node.out).toContain(`invalid record: nodes/${UUID}/${formatProblem(p!)}`);
  });

  it('hnforge node: add, list, show (--json), and one-line errors for a bad hostname, an existing record and an invalid file', async () => {
    const repo = join(base, 'cli');
    await mkdir(repo);
    const add = await hnforge(['node', 'add', '--repo', repo, '--id', UUID, '--hostname', 'db-01', '--json']);
    expect(add.code, add.stderr).toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ ok: true, id: UUID, hostname: 'db-01', network: { mode: 'dhcp' }, valid: true });
    const again = await hnforge(['node', 'add', '--repo', repo, '--id', UUID, '--hostname', 'db-01']);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe(`hnforge: error: node ${UUID} already has a record in ${join(repo, 'nodes', UUID)}; --force replaces its node.conf and network.conf (keys and UUIDs are kept)`);
    const bad = await hnforge(['node', 'add', '--repo', repo, '--id', 'mac-525400000001', '--hostname', 'Bad_Name']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain("node.conf line 3: hostname='Bad_Name' does not match");
    const list = await hnforge(['node', 'list', '--repo', repo]);
    expect(list.stdout).toMatch(new RegExp(`^${UUID}\\s+db-01\\s+dhcp\\s+ok\\n$`));
    await writeFile(join(repo, 'nodes', UUID, 'network.conf'), 'mode=dhcp\nmtu=9000\n');
    const show = await hnforge(['node', 'show', UUID, '--repo', repo, '--json']);
    expect(show.code).toBe(1);
    expect(JSON.parse(show.stdout).error).toMatchObject({ code: 'ENODE_RECORD', details: [`${UUID}/network.conf line 2: unknown key 'mtu'`] });
    expect(show.stderr).not.toContain('    at ');
  });
});
