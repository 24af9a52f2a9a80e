// [contract] Pinned keys fetched by fingerprint (pipeline/gentoo/keys.ts)
// against a key server and WKD stand-in on 127.0.0.1 (real HTTP, real
// OpenPGP keys made here, real gpgv over the keyring that comes out). The
// stand-in serves a current key, an expired copy of the same key, a key with
// another fingerprint, or nothing.
// NOT verified here: Gentoo's real key server and WKD (their answers, TLS,
// the real release and snapshot keys and their current expiry); see
// pipeline/gentoo/README.md.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { HnError } from '../../pipeline/errors.ts';
import { hkpUrl, judgeKey, keyCacheFile, resolveKeys, wkdUrls, zbase32, type KeyRequest } from '../../pipeline/gentoo/keys.ts';
import { makeKeyring, verifyDetached } from '../../pipeline/gentoo/openpgp.ts';
import { tempDir } from './fixtures.ts';

const DAY = 86_400;

interface Served {
  /** path+query -> body (404 when absent). */
  routes: Map<string, string>;
  requests: string[];
  url: string;
  server: Server;
}

async function serve(): Promise<Served> {
  const routes = new Map<string, string>();
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const body = routes.get(req.url ?? '');
    if (body === undefined) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/pgp-keys' }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('no port');
  return { routes, requests, url: `http://127.0.0.1:${addr.port}`, server };
}

const pathOf = (url: string) => url.replace(/^http:\/\/[^/]+/, '');

async function code(p: Promise<unknown>): Promise<{ code: string; message: string; details: string[] }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HnError) return { code: e.code, message: e.message, details: e.details };
    throw e;
  }
  return { code: 'no error', message: '', details: [] };
}

describe('key locations', () => {
  it('asks the key server by full fingerprint, machine-readable', () => {
    expect(hkpUrl('https://keys.gentoo.org/', '13EB BDBE DE7A 1277 5DFD B1BA BB57 2E0E 2D18 2910')).toBe(
      'https://keys.gentoo.org/pks/lookup?op=get&options=mr&search=0x13EBBDBEDE7A12775DFDB1BABB572E0E2D182910',
    );
  });
  it("hashes WKD local parts as in the WKD draft's example (z-base-32 of SHA-1)", () => {
    expect(wkdUrls('Joe.Doe@Example.ORG')).toEqual([
      'https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe',
      'https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe',
    ]);
    expect(zbase32(new Uint8Array([0xf0, 0xbf, 0xc7]))).toBe('6n9hq');
  });
});

describe('[contract] pinned keys from a key server and WKD stand-in on 127.0.0.1', () => {
  let srv: Served;
  let dir: string;
  let fpr: string;
  let current: string;
  let expired: string;
  let other: string;
  let otherFpr: string;
  let signer: openpgp.PrivateKey;
  const email = 'releng@keys.hnforge.invalid';

  beforeAll(async () => {
    srv = await serve();
    dir = await tempDir('hnforge-keys-');
    const created = new Date(Date.now() - 3 * DAY * 1000);
    // Created three days ago, valid for one: expired. The same key re-signed without expiry: what
    // Gentoo publishes after extending it (same primary fingerprint, new self-signatures).
    const old = await openpgp.generateKey({ userIDs: [{ name: 'hnforge test release', email }], type: 'ecc', date: created, keyExpirationTime: DAY, format: 'object' });
    expired = old.publicKey.armor();
    fpr = old.publicKey.getFingerprint().toUpperCase();
    const renewed = await openpgp.reformatKey({ privateKey: old.privateKey, userIDs: [{ name: 'hnforge test release', email }], keyExpirationTime: 0, format: 'object' });
    current = renewed.publicKey.armor();
    signer = renewed.privateKey;
    const o = await openpgp.generateKey({ userIDs: [{ name: 'someone else', email }], type: 'ecc', format: 'object' });
    other = o.publicKey.armor();
    otherFpr = o.publicKey.getFingerprint().toUpperCase();
  });
  afterAll(async () => {
    await new Promise((r) => srv?.server.close(r));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  let n = 0;
  async function request(over: Partial<KeyRequest> = {}): Promise<KeyRequest> {
    const cacheDir = join(dir, `cache-${n++}`);
    await mkdir(cacheDir, { recursive: true });
    srv.routes.clear();
    srv.requests.length = 0;
    return { pinned: [{ fingerprint: fpr, role: 'stage3 release key', email }], sources: ['keyserver', 'wkd'], keyserver: srv.url, wkdBase: srv.url, cacheDir, ...over };
  }
  const hkp = () => pathOf(hkpUrl(srv.url, fpr));
  const wkd = () => pathOf(wkdUrls(email, srv.url)[0]!);

  it('the fixtures are what they claim: same fingerprint expired and current, another key', async () => {
    expect((await judgeKey(Buffer.from(expired), fpr)).ok).toBe(false);
    expect((await judgeKey(Buffer.from(current), fpr)).ok).toBe(true);
    expect(otherFpr).not.toBe(fpr);
  });

  it('a current key: fetched by fingerprint, cached, and gpgv verifies a signature with the keyring made from it', async () => {
    const req = await request();
    srv.routes.set(hkp(), current);
    const r = await resolveKeys(req);
    expect(srv.requests).toEqual([hkp()]);
    expect(r.keys).toEqual([{ fingerprint: fpr, role: 'stage3 release key', expires: 'never', source: `${srv.url}${hkp()}` }]);
    expect((await judgeKey(await readFile(keyCacheFile(req.cacheDir, fpr)), fpr)).ok).toBe(true);
    // The keyring the stages use: real gpgv accepts a signature by the pinned key.
    const file = join(dir, 'signed.txt');
    await writeFile(file, 'stage3 body\n');
    const sig = await openpgp.sign({ message: await openpgp.createMessage({ binary: await readFile(file) }), signingKeys: signer, detached: true });
    await writeFile(`${file}.asc`, sig as string);
    const keyring = await makeKeyring(r.file, dir);
    try {
      await verifyDetached(file, `${file}.asc`, keyring, fpr);
    } finally {
      await keyring.dispose();
    }
    // A second resolve uses the cache: nothing fetched.
    srv.requests.length = 0;
    expect((await resolveKeys(req)).keys[0]!.source).toBe('cache');
    expect(srv.requests).toEqual([]);
  });

  it('read-only (a dry run): the key is resolved but nothing is written to the cache', async () => {
    const req = await request({ readOnly: true, outDir: join(dir, 'dry') });
    srv.routes.set(hkp(), current);
    const r = await resolveKeys(req);
    expect(r.file.startsWith(join(dir, 'dry'))).toBe(true);
    await expect(readFile(keyCacheFile(req.cacheDir, fpr))).rejects.toThrow();
  });

  it('an expired key everywhere: EGENTOO_KEY_EXPIRED in one line naming the key, its expiry and how to refresh', async () => {
    const req = await request();
    srv.routes.set(hkp(), expired);
    srv.routes.set(wkd(), expired);
    const e = await code(resolveKeys(req));
    expect(e.code).toBe('EGENTOO_KEY_EXPIRED');
    expect(e.message).not.toContain('\n');
    expect(e.message).toMatch(new RegExp(`^key ${fpr} \\(stage3 release key\\) expired \\(\\d{4}-\\d{2}-\\d{2}\\) in every copy found; refresh: .*--keyring FILE`));
    expect(srv.requests).toEqual([hkp(), wkd()]);
  });

  it('a key with another fingerprint served for the pinned one: refused, EGENTOO_KEY_FETCH', async () => {
    const req = await request({ sources: ['keyserver'] });
    srv.routes.set(hkp(), other);
    const e = await code(resolveKeys(req));
    expect(e.code).toBe('EGENTOO_KEY_FETCH');
    expect(e.message).toContain(`served ${otherFpr}, not the pinned ${fpr}`);
    await expect(readFile(keyCacheFile(req.cacheDir, fpr))).rejects.toThrow();
  });

  it('nothing served: EGENTOO_KEY_FETCH naming every URL tried', async () => {
    const req = await request();
    const e = await code(resolveKeys(req));
    expect(e.code).toBe('EGENTOO_KEY_FETCH');
    expect(e.details).toEqual([`${srv.url}${hkp()}: not found (404)`, `${srv.url}${wkd()}: not found (404)`]);
  });

  it('an unreachable key server: EGENTOO_KEY_FETCH, "unreachable"', async () => {
    const req = await request({ sources: ['keyserver'], keyserver: 'http://127.0.0.1:9' });
    const e = await code(resolveKeys(req));
    expect(e.code).toBe('EGENTOO_KEY_FETCH');
    expect(e.message).toMatch(/unreachable/);
  });

  it('falls back to WKD when the key server has only an expired copy; the order is configurable', async () => {
    let req = await request();
    srv.routes.set(hkp(), expired);
    srv.routes.set(wkd(), current);
    expect((await resolveKeys(req)).keys[0]!.source).toBe(`${srv.url}${wkd()}`);
    expect(srv.requests).toEqual([hkp(), wkd()]);

    req = await request({ sources: ['wkd', 'keyserver'] });
    srv.routes.set(hkp(), current);
    srv.routes.set(wkd(), current);
    await resolveKeys(req);
    expect(srv.requests).toEqual([wkd()]);
  });

  it('refetches a cached key that expired, and replaces the cached copy', async () => {
    const req = await request();
    await mkdir(join(req.cacheDir, 'gentoo/keys'), { recursive: true });
    await writeFile(keyCacheFile(req.cacheDir, fpr), expired);
    srv.routes.set(hkp(), current);
    const log: string[] = [];
    const r = await resolveKeys({ ...req, log: (l) => log.push(l) });
    expect(r.keys[0]!.source).toBe(`${srv.url}${hkp()}`);
    expect(log[0]).toMatch(/cached copy refused \(expired on \d{4}-\d{2}-\d{2}\); fetching it again/);
    expect((await judgeKey(await readFile(keyCacheFile(req.cacheDir, fpr)), fpr)).ok).toBe(true);
  });

  it('--keyring FILE (air-gapped): nothing fetched; an expired or foreign file is refused in one line', async () => {
    const file = join(dir, 'airgap.asc');
    await writeFile(file, current);
    let req = await request({ keyringFile: file });
    expect((await resolveKeys(req)).keys[0]!.source).toBe(`file ${file}`);
    expect(srv.requests).toEqual([]);

    await writeFile(file, expired);
    req = await request({ keyringFile: file });
    let e = await code(resolveKeys(req));
    expect(e.code).toBe('EGENTOO_KEY_EXPIRED');
    expect(e.message).toMatch(new RegExp(`^key ${fpr} \\(stage3 release key\\) in ${file}: expired on \\d{4}-\\d{2}-\\d{2}; export a current copy`));

    await writeFile(file, other);
    e = await code(resolveKeys(await request({ keyringFile: file })));
    expect(e.code).toBe('EGENTOO_KEYRING');
    expect(srv.requests).toEqual([]);
  });
});
