// boot/hn-update under busybox ash and dash against stores that publish itself
// wrote (real zstd, real gpgv, real sha256sum): which version it picks, what it
// refuses, how it resumes a dropped download, and that nothing is staged
// unless everything verified. The HTTP cases use a server on 127.0.0.1 that can
// drop a connection halfway; nginx and OCI serve it in the pull tests.

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { cp, mkdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOSTPART_FILES, UPDATE_EXIT } from '../../pipeline/boot/contract.ts';
import { promote } from '../../pipeline/publish/channel-ops.ts';
import { publish } from '../../pipeline/publish/publish.ts';
import { FileStore } from '../../pipeline/publish/store-file.ts';
import { versionFiles } from '../../pipeline/publish/store.ts';
import { updateConfText } from '../../stages/node-tools.ts';
import { makeImage, makeKeys, scratchDir, type Keys } from '../publish/publish-fixtures.ts';
import { openStore } from '../../pipeline/publish/stores.ts';
import { registryAvailable, startFaultProxy, startRegistry, type FaultProxy, type Registry } from '../publish/registry-fixtures.ts';
import { REPO, SHELLS } from './sh-harness.ts';

const HN_UPDATE = join(REPO, 'boot/hn-update');
const isRoot = process.getuid?.() === 0;
const PROFILE = 'hn-test';
const OLD = '20261201.1';
const MID = '20261202.9';
const NEWEST = '20261202.10'; // newer than .9: digits compare as numbers

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  json?: Record<string, string>;
}

interface Node {
  hp: string;
  release: string;
  config: string;
}

let tmp: Awaited<ReturnType<typeof scratchDir>>;
let keys: Keys;
let otherKeys: Keys;
let storeDir: string;
const imageSha: Record<string, string> = {};

const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

/** A node: a host partition directory, its /etc/hn-release and /etc/hn-update.conf. */
async function makeNode(name: string, opts: { running?: string; store?: string; keyring?: string; extraConf?: string } = {}): Promise<Node> {
  const dir = join(tmp.dir, 'nodes', name);
  await mkdir(join(dir, 'hostpart'), { recursive: true });
  const release = join(dir, 'hn-release');
  await writeFile(release, `HN_VERSION="${opts.running ?? OLD}"\nHN_PROFILE="${PROFILE}"\nHN_BASE="debian"\n`);
  const config = join(dir, 'hn-update.conf');
  // The file the build writes, with the keyring moved to where this test keeps it (the last line wins).
  const conf = updateConfText({ store: opts.store ?? storeDir, channel: 'nightly', schedule: 'daily', randomDelay: '1h', allowUnsigned: false });
  await writeFile(config, `${conf}HN_UPDATE_KEYRING="${opts.keyring ?? keys.keyring}"\n${opts.extraConf ?? ''}`);
  return { hp: join(dir, 'hostpart'), release, config };
}

function runUpdate(shell: string[], node: Node, args: string[] = []): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(shell[0]!, [...shell.slice(1), HN_UPDATE, '--hostpart', node.hp, '--config', node.config, ...args], {
      env: { PATH: process.env.PATH, HN_UPDATE_RELEASE: node.release, TMPDIR: tmp.dir },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 120_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = stdout.trim().split('\n').at(-1);
      resolve({ code, stdout, stderr, ...(args.includes('--json') && line ? { json: JSON.parse(line) } : {}) });
    });
  });
}

const staged = async (node: Node) => {
  const image = join(node.hp, HOSTPART_FILES.next);
  const sidecar = join(node.hp, HOSTPART_FILES.nextSidecar);
  const exists = await stat(image).then(() => true, () => false);
  return { exists, sidecar: exists ? await readFile(sidecar, 'utf8') : undefined, sha256: exists ? await sha256(image) : undefined };
};

const nothingStaged = async (node: Node) => {
  expect((await staged(node)).exists).toBe(false);
  await expect(stat(join(node.hp, HOSTPART_FILES.nextPartial))).rejects.toThrow();
};

/** A copy of the store whose channel can be damaged without touching the others. */
async function storeCopy(name: string): Promise<string> {
  const dir = join(tmp.dir, 'stores', name);
  await cp(storeDir, dir, { recursive: true });
  return dir;
}

const artifactIn = (store: string, version: string) => join(store, PROFILE, 'nightly', versionFiles(version).artifact);

beforeAll(async () => {
  tmp = await scratchDir('hnforge-hn-update-');
  keys = await makeKeys(join(tmp.dir, 'keys'));
  otherKeys = await makeKeys(join(tmp.dir, 'other-keys'), 'another key');
  storeDir = join(tmp.dir, 'store');
  const store = new FileStore(storeDir);
  for (const version of [OLD, MID, NEWEST]) {
    const { image } = await makeImage(join(tmp.dir, 'img', version), { version, profile: PROFILE });
    imageSha[version] = await sha256(image);
    await publish({ image, store, channel: 'nightly', signingKey: keys.key, lockWaitMs: 1000 });
  }
  // A second channel whose head is an older version.
  await promote({ store, profile: PROFILE, version: MID, from: 'nightly', to: 'stable', signingKey: keys.key, trust: { keyring: await readFile(keys.keyring), allowUnsigned: false }, lockWaitMs: 1000 });
}, 180_000);

afterAll(async () => {
  await tmp?.cleanup();
});

describe.each(SHELLS)('hn-update under $name', ({ argv }) => {
  it('stages the newest version newer than the running one, with its sidecar, and says so', async () => {
    const node = await makeNode(`newest-${argv.length}`);
    // What the boot chain set aside earlier is freed once a new version is staged.
    const setAside = [`${HOSTPART_FILES.next}.rejected`, `${HOSTPART_FILES.nextSidecar}.rejected`, `${HOSTPART_FILES.next}.skipped`];
    for (const f of setAside) await writeFile(join(node.hp, f), 'set aside at boot\n');
    const r = await runUpdate(argv, node, ['--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ state: 'staged', running: OLD, newest: NEWEST, staged: NEWEST, channel: 'nightly' });
    const s = await staged(node);
    expect(s.sha256).toBe(imageSha[NEWEST]);
    for (const f of setAside) await expect(stat(join(node.hp, f))).rejects.toThrow();
    expect(s.sidecar).toBe(`format=hnforge-sidecar-1\nsize=${96 << 20}\nsha256=${imageSha[NEWEST]}\nversion=${NEWEST}\n`);
    // Restored sparse: the 96 MiB image holds about 4 MiB of data.
    expect((await stat(join(node.hp, HOSTPART_FILES.next))).blocks * 512).toBeLessThan(16 << 20);
    expect(await readFile(join(node.hp, HOSTPART_FILES.updateLog), 'utf8')).toMatch(new RegExp(`staged ${NEWEST.replace('.', '\\.')}`));
    // A second run finds it staged and changes nothing.
    const again = await runUpdate(argv, node, ['--json']);
    expect([again.code, again.json?.state]).toEqual([0, 'staged']);
  });

  it('--check says whether a newer version exists, by exit code, and writes nothing', async () => {
    const behind = await makeNode(`check-behind-${argv.length}`);
    const r = await runUpdate(argv, behind, ['--check', '--json']);
    expect([r.code, r.json?.state, r.json?.newest]).toEqual([0, 'available', NEWEST]);
    await nothingStaged(behind);
    const current = await makeNode(`check-current-${argv.length}`, { running: NEWEST });
    const c = await runUpdate(argv, current, ['--check', '--json']);
    expect([c.code, c.json?.state]).toEqual([UPDATE_EXIT.upToDate, 'up-to-date']);
  });

  it('--channel and --store override the configuration', async () => {
    const node = await makeNode(`channel-${argv.length}`, { store: '/nonexistent/store' });
    const r = await runUpdate(argv, node, ['--check', '--json', '--channel', 'stable', '--store', `file://${storeDir}`]);
    expect([r.code, r.json?.channel, r.json?.newest], r.stderr).toEqual([0, 'stable', MID]);
    const missing = await runUpdate(argv, node, ['--check', '--channel', 'testing', '--store', storeDir]);
    expect(missing.code).toBe(UPDATE_EXIT.store);
    expect(missing.stderr).toMatch(/cannot read .*hn-test\/testing\/SHA256SUMS/);
  });

  it('never stages a version older than (or the same as) the running one', async () => {
    const node = await makeNode(`older-${argv.length}`, { running: '20261203.1' });
    const r = await runUpdate(argv, node, ['--json']);
    expect([r.code, r.json?.state, r.json?.newest]).toEqual([0, 'up-to-date', NEWEST]);
    await nothingStaged(node);
  });

  it('refuses a channel signed by another key', async () => {
    const node = await makeNode(`other-key-${argv.length}`, { keyring: otherKeys.keyring });
    const r = await runUpdate(argv, node);
    expect(r.code).toBe(UPDATE_EXIT.verify);
    expect(r.stderr).toMatch(/not signed by a key in/);
    await nothingStaged(node);
  });

  it('refuses an unsigned channel unless told otherwise', async () => {
    const store = await storeCopy(`unsigned-${argv.length}`);
    await rm(join(store, PROFILE, 'nightly', 'SHA256SUMS.gpg'));
    const node = await makeNode(`unsigned-${argv.length}`, { store });
    const r = await runUpdate(argv, node);
    expect(r.code).toBe(UPDATE_EXIT.verify);
    expect(r.stderr).toMatch(/unsigned; refused/);
    await nothingStaged(node);
    const allowed = await runUpdate(argv, node, ['--allow-unsigned']);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stderr).toMatch(/NOT checked/);
    expect((await staged(node)).sha256).toBe(imageSha[NEWEST]);
  });

  it('refuses a tampered artifact and a truncated one: nothing staged, nothing left half-written', async () => {
    const tampered = await storeCopy(`tampered-${argv.length}`);
    const art = artifactIn(tampered, NEWEST);
    const bytes = await readFile(art);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await writeFile(art, bytes);
    const a = await makeNode(`tampered-${argv.length}`, { store: tampered });
    const r = await runUpdate(argv, a);
    expect(r.code).toBe(UPDATE_EXIT.verify);
    expect(r.stderr).toMatch(/does not match its SHA256SUMS line/);
    await nothingStaged(a);

    const truncated = await storeCopy(`truncated-${argv.length}`);
    await truncate(artifactIn(truncated, NEWEST), 1000);
    const b = await makeNode(`truncated-${argv.length}`, { store: truncated });
    expect((await runUpdate(argv, b)).code).toBe(UPDATE_EXIT.verify);
    await nothingStaged(b);
  });

  it('a second run while one holds the lock exits at once; a lock whose holder died is taken over', async () => {
    const node = await makeNode(`lock-${argv.length}`);
    const lock = join(node.hp, HOSTPART_FILES.updateLock);
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
      await mkdir(lock);
      await writeFile(join(lock, 'owner'), `${holder.pid} ${bootId}\n`);
      const r = await runUpdate(argv, node, ['--json']);
      expect([r.code, r.json?.state]).toEqual([UPDATE_EXIT.locked, 'error']);
      expect(r.stderr).toMatch(new RegExp(`pid ${holder.pid}`));
      await nothingStaged(node);
    } finally {
      holder.kill();
    }
    await new Promise((done) => holder.once('exit', done));
    const r = await runUpdate(argv, node);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/stale lock/);
    await expect(stat(lock)).rejects.toThrow();
  });

  it('says what is wrong with bad input in one line, exit 2', async () => {
    const node = await makeNode(`usage-${argv.length}`);
    const r = await runUpdate(argv, node, ['--bogus']);
    expect(r.code).toBe(UPDATE_EXIT.usage);
    expect(r.stderr.trim().split('\n')).toEqual(['hn-update: unknown option --bogus (see hn-update --help)']);
    const s = await runUpdate(argv, node, ['--store', 'ftp://x/y']);
    expect([s.code, s.stderr]).toEqual([UPDATE_EXIT.usage, expect.stringMatching(/use \/path, file:\/\/\/path, http\(s\)/)]);
  });
});

describe.skipIf(!isRoot)('[root] hn-update: a host partition too small', () => {
  const mounted: string[] = [];
  afterAll(() => {
    for (const m of mounted) spawnSync('umount', [m]);
  });

  it('refuses before downloading anything when the new image cannot fit', async () => {
    const node = await makeNode('small');
    // 40 MiB: the image's 4 MiB of data would fit, not with the 64 MiB the updater keeps free.
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'hn-update-test', node.hp]);
    expect(r.status, String(r.stderr)).toBe(0);
    mounted.push(node.hp);
    const d = await runUpdate(SHELLS[0]!.argv, node, ['--json']);
    expect([d.code, d.json?.state]).toEqual([UPDATE_EXIT.space, 'error']);
    expect(d.stderr).toMatch(/MiB free, .* needs .* MiB beside the current and old images/);
    await nothingStaged(node);
  });
});

/** Serves the store over HTTP with ranges; the first request for `dropName` is cut off halfway. */
async function flakyServer(root: string, dropName: string): Promise<{ server: Server; url: string; ranges: string[] }> {
  const ranges: string[] = [];
  let dropped = false;
  const server = createServer(async (req, res) => {
    const path = join(root, decodeURIComponent(new URL(req.url!, 'http://x').pathname));
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) return res.writeHead(404).end();
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    if (path.endsWith(dropName)) ranges.push(req.headers.range ?? 'whole');
    res.writeHead(m ? 206 : 200, { 'Content-Length': st.size - start, ...(m ? { 'Content-Range': `bytes ${start}-${st.size - 1}/${st.size}` } : {}) });
    if (path.endsWith(dropName) && !dropped) {
      dropped = true;
      const half = Math.floor(st.size / 2);
      const stream = createReadStream(path, { start, end: half - 1 });
      stream.pipe(res, { end: false });
      stream.on('end', () => setTimeout(() => res.socket?.destroy(), 50));
      return;
    }
    createReadStream(path, { start }).pipe(res);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = (server.address() as { port: number }).port;
  return { server, url: `http://127.0.0.1:${port}`, ranges };
}

describe.each(SHELLS)('hn-update over HTTP under $name', ({ argv }) => {
  it('resumes a download the server dropped halfway, and stages the verified image', async () => {
    const { server, url, ranges } = await flakyServer(storeDir, versionFiles(NEWEST).artifact);
    try {
      const node = await makeNode(`http-${argv.length}`, { store: url });
      const r = await runUpdate(argv, node, ['--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/resuming at \d+ of \d+ bytes/);
      expect(ranges[0]).toBe('whole');
      expect(ranges[1]).toMatch(/^bytes=[1-9]\d*-$/);
      expect((await staged(node)).sha256).toBe(imageSha[NEWEST]);
      // The download is removed once the image is staged.
      await expect(stat(join(node.hp, HOSTPART_FILES.nextDownload))).rejects.toThrow();
    } finally {
      server.close();
    }
  });
});

describe.skipIf(!registryAvailable)('hn-update from an OCI registry (docker-registry on 127.0.0.1)', () => {
  let registry: Registry | undefined;
  let proxy: FaultProxy | undefined;

  beforeAll(async () => {
    registry = await startRegistry();
    const store = await openStore(`${registry.oci}/hnforge`);
    try {
      for (const version of [MID, NEWEST]) {
        await publish({ image: join(tmp.dir, 'img', version, 'hn-root.img'), store, channel: 'nightly', signingKey: keys.key, lockWaitMs: 1000 });
      }
    } finally {
      await store.close();
    }
    proxy = await startFaultProxy(registry.port, { bearer: { user: 'node', password: 'pull-secret' } });
  }, 180_000);
  afterAll(async () => {
    await proxy?.close();
    await registry?.stop();
  });

  it.each(SHELLS)('stages the newest version: the index from the channel tag, the artifact as a blob by its sha256 ($name)', async ({ argv }) => {
    const node = await makeNode(`oci-${argv.length}`, { store: `${registry!.oci}/hnforge` });
    const r = await runUpdate(argv, node, ['--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ state: 'staged', newest: NEWEST, staged: NEWEST });
    expect((await staged(node)).sha256).toBe(imageSha[NEWEST]);
  });

  it('gets a token from the registry\'s token service with the configured credentials; without them it says so', async () => {
    const node = await makeNode('oci-token', { store: `${proxy!.oci}/hnforge`, extraConf: 'HN_UPDATE_OCI_CREDENTIALS="node:pull-secret"\n' });
    const r = await runUpdate(SHELLS[0]!.argv, node, ['--check', '--json']);
    expect([r.code, r.json?.state, r.json?.newest], r.stderr).toEqual([0, 'available', NEWEST]);
    const staging = await runUpdate(SHELLS[0]!.argv, node);
    expect(staging.code, staging.stderr).toBe(0);
    expect((await staged(node)).sha256).toBe(imageSha[NEWEST]);

    const anonymous = await makeNode('oci-anonymous', { store: `${proxy!.oci}/hnforge` });
    const denied = await runUpdate(SHELLS[0]!.argv, anonymous);
    expect(denied.code).toBe(UPDATE_EXIT.store);
    expect(denied.stderr).toMatch(/token service gave no token \(HN_UPDATE_OCI_CREDENTIALS/);
  });
});
