// Node records on the operator's side: the state repository's nodes/<id>/
// directories that boot/hn-instantiate reads on each node. Validated with the
// one schema (NODE_RECORD_SCHEMA in pipeline/boot/contract.ts; the script
// carries a generated copy), written atomically (temporary file, fsync,
// rename). A record need not be complete: the node generates what is missing
// (machine-id, SSH host keys, XtreemFS UUIDs) at its next boot and saves it back.

import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { IDENTITY, NODE_RECORD_SCHEMA, NODE_SSH_KEY_TYPES } from './boot/contract.ts';
import { HnError } from './errors.ts';

export const NODE_ID_ERE = NODE_RECORD_SCHEMA['node.conf']!.id!.ere;

/** The directory of record `id` in the state repository `repo`. */
export const recordDir = (repo: string, id: string) => join(repo, IDENTITY.nodesDir, id);

/** One problem of one file, as hn-instantiate words it: `<file> line N: why` or `<file>: why`. */
export interface RecordProblem {
  file: string;
  line?: number;
  why: string;
}

export const formatProblem = (p: RecordProblem) => `${p.file}${p.line ? ` line ${p.line}` : ''}: ${p.why}`;

/** Checks one record file's text against the schema (what hn-instantiate checks, in the same order). */
export function checkRecordFile(file: string, text: string, id?: string): RecordProblem[] {
  const schema = NODE_RECORD_SCHEMA[file];
  if (!schema) return [{ file, why: `not a record file (${Object.keys(NODE_RECORD_SCHEMA).join(', ')}, ssh_host_<type>_key[.pub], log)` }];
  const lines = text.replace(/\n$/, '').split('\n');
  if (file === 'machine-id') {
    const ere = new RegExp(schema.machine_id!.ere);
    return lines.length <= 1 && ere.test(lines[0] ?? '') ? [] : [{ file, line: 1, why: 'not one line of 32 lowercase hex digits' }];
  }
  const seen = new Map<string, string>();
  for (const [i, line] of lines.entries()) {
    const n = i + 1;
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) return [{ file, line: n, why: 'not key=value' }];
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    const spec = schema[key];
    if (!spec) return [{ file, line: n, why: `unknown key '${key}'` }];
    if (!new RegExp(spec.ere).test(value)) return [{ file, line: n, why: `${key}='${value}' does not match ${spec.ere}` }];
    if (seen.has(key)) return [{ file, line: n, why: `${key} given twice` }];
    seen.set(key, value);
  }
  for (const [key, spec] of Object.entries(schema)) if (spec.required && !seen.has(key)) return [{ file, why: `required key '${key}' is missing` }];
  if (file === 'network.conf' && seen.get('mode') === 'static' && !seen.has('address')) return [{ file, why: 'mode=static needs address=' }];
  if (file === 'node.conf' && id !== undefined && seen.get('id') !== id) {
    return [{ file, line: lines.findIndex((l) => l.startsWith('id=')) + 1, why: `id is not this node's (${id})` }];
  }
  return [];
}

/** key=value pairs of a record file (comments and blank lines skipped). */
export function parseRecordFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || !line.includes('=')) continue;
    out[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
  }
  return out;
}

export interface NodeRecord {
  id: string;
  dir: string;
  /** Parsed key=value files (node.conf, network.conf, ...); machine-id as { machine_id }. */
  files: Record<string, Record<string, string>>;
  /** SSH host key types with a public key in the record (the private halves are never read here). */
  sshKeys: string[];
  /** Schema problems, one per invalid file. */
  problems: RecordProblem[];
  /** Lines of the record's log (the node's decisions: generated, synced, conflicts, fallbacks). */
  log: string[];
}

async function readText(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw new HnError('ENODE_RECORD', `${path}: cannot read (${e.code ?? e.message})`);
  });
}

export async function readRecord(repo: string, id: string): Promise<NodeRecord> {
  const dir = recordDir(repo, id);
  if (!(await stat(dir).catch(() => undefined))?.isDirectory()) {
    throw new HnError('ENODE_MISSING', `no record for node ${id} in ${join(repo, IDENTITY.nodesDir)} (hnforge node list --repo ${repo} lists them)`);
  }
  const record: NodeRecord = { id, dir, files: {}, sshKeys: [], problems: [], log: [] };
  for (const file of Object.keys(NODE_RECORD_SCHEMA)) {
    const text = await readText(join(dir, file));
    if (text === undefined) continue;
    record.problems.push(...checkRecordFile(file, text, id));
    record.files[file] = file === 'machine-id' ? { machine_id: text.trim() } : parseRecordFile(text);
  }
  if (!record.files['node.conf']) record.problems.unshift({ file: 'node.conf', why: 'missing (every record needs id= and hostname=)' });
  for (const t of NODE_SSH_KEY_TYPES) if (await readText(join(dir, `ssh_host_${t}_key.pub`))) record.sshKeys.push(t);
  record.log = ((await readText(join(dir, IDENTITY.recordLog))) ?? '').split('\n').filter(Boolean);
  return record;
}

/** Ids of the records in the repository, sorted; directories that are no valid id are ignored. */
export async function listRecords(repo: string): Promise<string[]> {
  if (!(await stat(repo).catch(() => undefined))?.isDirectory()) throw new HnError('EUSAGE', `--repo ${repo}: no such directory (the state repository, e.g. /warehouse/hnforge)`);
  const names = await readdir(join(repo, IDENTITY.nodesDir)).catch(() => [] as string[]);
  const re = new RegExp(NODE_ID_ERE);
  return names.filter((n) => re.test(n)).sort();
}

/** Writes `text` to `path` atomically: a temporary file in the same directory, fsync, rename, fsync of the directory. */
export async function writeAtomic(path: string, text: string, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${path.slice(dirname(path).length + 1)}.hn-tmp.${process.pid}`);
  try {
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    try {
      await fh.writeFile(text);
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    const d = await open(dirname(path), constants.O_RDONLY);
    await d.sync().finally(() => d.close());
  } catch (e) {
    await rm(tmp, { force: true });
    throw new HnError('ENODE_RECORD', `${path}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
}

export interface AddNode {
  repo: string;
  id: string;
  hostname: string;
  domain?: string;
  /** IPv4/prefix: a static address; none: DHCP. */
  address?: string;
  gateway?: string;
  dns?: string[];
  /** Replace node.conf and network.conf of an existing record (the node's generated files are kept). */
  force?: boolean;
}

/**
 * Pre-seeds a record: node.conf and network.conf, validated with the schema
 * before anything is written. The node fills in the rest at its next boot.
 */
export async function addRecord(opts: AddNode): Promise<NodeRecord> {
  const id = opts.id.toLowerCase();
  const files: Record<string, string> = {
    'node.conf': [`id=${id}`, 'id_source=operator', `hostname=${opts.hostname}`, ...(opts.domain ? [`domain=${opts.domain}`] : []), `created=${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`, ''].join('\n'),
    'network.conf': (opts.address
      ? ['mode=static', `address=${opts.address}`, ...(opts.gateway ? [`gateway=${opts.gateway}`] : []), ...(opts.dns?.length ? [`dns=${opts.dns.join(' ')}`] : [])]
      : ['mode=dhcp']
    ).concat('').join('\n'),
  };
  if (!new RegExp(NODE_ID_ERE).test(id)) throw new HnError('EUSAGE', `--id ${opts.id}: not a node id (a DMI product UUID, serial-<serial> or mac-<12 hex digits>)`);
  if (!opts.address && (opts.gateway || opts.dns?.length)) throw new HnError('EUSAGE', '--gateway and --dns need --address (without it the node uses DHCP)');
  for (const [file, text] of Object.entries(files)) {
    const [p] = checkRecordFile(file, text, id);
    if (p) throw new HnError('EUSAGE', `the record would be invalid: ${formatProblem(p)}`);
  }
  const dir = recordDir(opts.repo, id);
  if (!(await stat(opts.repo).catch(() => undefined))?.isDirectory()) throw new HnError('EUSAGE', `--repo ${opts.repo}: no such directory (the state repository, e.g. /warehouse/hnforge)`);
  if ((await stat(join(dir, 'node.conf')).catch(() => undefined)) && !opts.force) {
    throw new HnError('ENODE_EXISTS', `node ${id} already has a record in ${dir}; --force replaces its node.conf and network.conf (keys and UUIDs are kept)`);
  }
  for (const [file, text] of Object.entries(files)) await writeAtomic(join(dir, file), text);
  return readRecord(opts.repo, id);
}
