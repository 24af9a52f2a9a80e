// Gentoo's signing keys by fingerprint: the profile pins fingerprints, the
// build fetches the public keys (Gentoo's key server by fingerprint, then
// WKD, in the order the profile gives), keeps only a key whose primary
// fingerprint is the pinned one, and caches it. A cached key that expired is
// fetched again before the build gives up (Gentoo extends the expiry of its
// keys regularly, so any stored copy goes stale). Air-gapped builders pass a
// key file instead (--keyring, gentoo.keyring); nothing is fetched then.

import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { gentooError } from './errors.ts';
import { normalizeFingerprint } from './openpgp.ts';

export type KeySource = 'keyserver' | 'wkd';

export const DEFAULT_KEYSERVER = 'https://keys.gentoo.org';
export const DEFAULT_KEY_SOURCES: readonly KeySource[] = ['keyserver', 'wkd'];

export interface PinnedKey {
  fingerprint: string;
  /** What the key signs, for messages ("stage3 release key"). */
  role: string;
  /** Address for a WKD lookup; without one WKD is skipped for this key. */
  email?: string;
}

export interface KeyRequest {
  pinned: PinnedKey[];
  sources: readonly KeySource[];
  keyserver: string;
  /** Serve WKD from this base instead of https://openpgpkey.<domain> and https://<domain> (mirrors, tests). */
  wkdBase?: string;
  cacheDir: string;
  /** Air-gapped: take the keys from this file and fetch nothing. */
  keyringFile?: string;
  log?: (line: string) => void;
  signal?: AbortSignal;
  now?: Date;
  /** A dry run: read the cache, write nothing to it (the keyring goes to `outDir`). */
  readOnly?: boolean;
  /** Where the combined keyring is written; default `<cache>/gentoo/keys`. */
  outDir?: string;
}

export interface ResolvedKey {
  fingerprint: string;
  role: string;
  /** ISO date, or 'never'. */
  expires: string;
  /** 'cache', 'file <path>' or the URL it came from. */
  source: string;
}

/** HKP lookup by fingerprint, machine-readable, as Gentoo's own container builds fetch the release key. */
export function hkpUrl(keyserver: string, fingerprint: string): string {
  return `${keyserver.replace(/\/+$/, '')}/pks/lookup?op=get&options=mr&search=0x${normalizeFingerprint(fingerprint)}`;
}

const ZBASE32 = 'ybndrfg8ejkmcpqxot1uwisza345h769';

/** z-base-32 (the WKD hash encoding): 5 bits per character, most significant first. */
export function zbase32(data: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ZBASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ZBASE32[(value << (5 - bits)) & 31];
  return out;
}

/** WKD URLs for an address: the advanced method, then the direct one (or one URL under `base`). */
export function wkdUrls(email: string, base?: string): string[] {
  const at = email.lastIndexOf('@');
  if (at <= 0) throw gentooError('EGENTOO_PROFILE', `'${email}' is not an e-mail address (gentoo.keys.wkd)`);
  const local = email.slice(0, at);
  const domain = email.slice(at + 1).toLowerCase();
  const hash = zbase32(createHash('sha1').update(local.toLowerCase()).digest());
  const query = `${hash}?l=${encodeURIComponent(local)}`;
  if (base) return [`${base.replace(/\/+$/, '')}/.well-known/openpgpkey/hu/${query}`];
  return [`https://openpgpkey.${domain}/.well-known/openpgpkey/${domain}/hu/${query}`, `https://${domain}/.well-known/openpgpkey/hu/${query}`];
}

export type KeyVerdict =
  | { ok: true; key: openpgp.PublicKey; expires: string }
  | { ok: false; why: string; expired?: string };

const isoDay = (d: Date) => d.toISOString().slice(0, 10);

async function readAnyKeys(data: Uint8Array): Promise<openpgp.Key[]> {
  const text = Buffer.from(data).toString('latin1');
  return text.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')
    ? openpgp.readKeys({ armoredKeys: text })
    : openpgp.readKeys({ binaryKeys: data });
}

/**
 * Picks the key whose primary fingerprint is `fingerprint` out of what a
 * source served and judges it at `now`: revoked, expired (with its expiry
 * date) or without a valid signing key are refused. Keys with other primary
 * fingerprints are ignored, whatever their subkeys are.
 */
export async function judgeKey(data: Uint8Array, fingerprint: string, now = new Date()): Promise<KeyVerdict> {
  const want = normalizeFingerprint(fingerprint);
  let keys: openpgp.Key[];
  try {
    keys = await readAnyKeys(data);
  } catch (e) {
    return { ok: false, why: `not OpenPGP key data (${String((e as Error).message ?? e).slice(0, 80)})` };
  }
  const key = keys.find((k) => k.getFingerprint().toUpperCase() === want);
  if (!key) {
    const got = keys.map((k) => k.getFingerprint().toUpperCase()).join(', ') || 'no key';
    return { ok: false, why: `served ${got}, not the pinned ${want}` };
  }
  const pub = key.toPublic();
  if (await pub.isRevoked(undefined, undefined, now).catch(() => false)) return { ok: false, why: 'revoked' };
  const expiry = await pub.getExpirationTime().catch(() => null);
  if (expiry instanceof Date && expiry.getTime() <= now.getTime()) {
    return { ok: false, why: `expired on ${isoDay(expiry)}`, expired: isoDay(expiry) };
  }
  if (expiry === null) return { ok: false, why: 'no valid self-signature' };
  try {
    await pub.getSigningKey(undefined, now);
  } catch {
    return { ok: false, why: 'no valid signing key (its signing subkey expired or was revoked)', expired: 'its signing subkey' };
  }
  return { ok: true, key: pub, expires: expiry instanceof Date ? isoDay(expiry) : 'never' };
}

/** Where a pinned key is cached (armored, one key). */
export function keyCacheFile(cacheDir: string, fingerprint: string): string {
  return join(cacheDir, 'gentoo', 'keys', `${normalizeFingerprint(fingerprint)}.asc`);
}

async function fetchBytes(url: string, signal?: AbortSignal): Promise<{ ok: true; data: Uint8Array } | { ok: false; why: string }> {
  try {
    const timeout = AbortSignal.timeout(30_000);
    const res = await fetch(url, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout, redirect: 'follow' });
    if (res.status === 404) return { ok: false, why: 'not found (404)' };
    if (!res.ok) return { ok: false, why: `HTTP ${res.status}` };
    return { ok: true, data: new Uint8Array(await res.arrayBuffer()) };
  } catch (e) {
    if (signal?.aborted) throw e;
    const cause = (e as { cause?: { code?: string } }).cause?.code;
    return { ok: false, why: `unreachable (${cause ?? (e as Error).message})` };
  }
}

/** The URLs tried for one key, in the configured order. */
export function keyUrls(pin: PinnedKey, req: Pick<KeyRequest, 'sources' | 'keyserver' | 'wkdBase'>): { source: KeySource; url: string }[] {
  return req.sources.flatMap((s): { source: KeySource; url: string }[] =>
    s === 'keyserver'
      ? [{ source: s, url: hkpUrl(req.keyserver, pin.fingerprint) }]
      : pin.email
        ? wkdUrls(pin.email, req.wkdBase).map((url) => ({ source: s, url }))
        : [],
  );
}

function refreshHint(pin: PinnedKey, req: Pick<KeyRequest, 'sources' | 'keyserver' | 'wkdBase'>): string {
  const first = keyUrls(pin, req)[0]?.url ?? hkpUrl(DEFAULT_KEYSERVER, pin.fingerprint);
  return `refresh: check ${first} serves a current key, or export one (gpg --armor --export ${pin.fingerprint}) and pass it with --keyring FILE (gentoo.keyring)`;
}

async function resolveOne(pin: PinnedKey, req: KeyRequest): Promise<{ key: openpgp.PublicKey; resolved: ResolvedKey }> {
  const log = req.log ?? (() => {});
  const now = req.now ?? new Date();
  const fpr = normalizeFingerprint(pin.fingerprint);
  const tried: string[] = [];
  let expired: string | undefined;
  const note = (where: string, v: KeyVerdict) => {
    if (v.ok) return;
    tried.push(`${where}: ${v.why}`);
    if (v.expired) expired ??= v.expired;
  };

  if (req.keyringFile) {
    const data = await readFile(req.keyringFile).catch(() => {
      throw gentooError('EGENTOO_KEYRING', `keyring file ${req.keyringFile} cannot be read; fix --keyring or gentoo.keyring`);
    });
    const v = await judgeKey(data, fpr, now);
    if (v.ok) return { key: v.key, resolved: { fingerprint: fpr, role: pin.role, expires: v.expires, source: `file ${req.keyringFile}` } };
    throw gentooError(
      v.expired ? 'EGENTOO_KEY_EXPIRED' : 'EGENTOO_KEYRING',
      `key ${fpr} (${pin.role}) in ${req.keyringFile}: ${v.why}; export a current copy (gpg --armor --export ${fpr}) into that file, or drop --keyring/gentoo.keyring to fetch it by fingerprint`,
    );
  }

  const cached = keyCacheFile(req.cacheDir, fpr);
  const fromCache = await readFile(cached).catch(() => undefined);
  if (fromCache) {
    const v = await judgeKey(fromCache, fpr, now);
    if (v.ok) return { key: v.key, resolved: { fingerprint: fpr, role: pin.role, expires: v.expires, source: 'cache' } };
    note('cache', v);
    log(`key ${fpr} (${pin.role}): cached copy refused (${v.ok ? '' : v.why}); fetching it again`);
  }

  for (const { url } of keyUrls(pin, req)) {
    const got = await fetchBytes(url, req.signal);
    if (!got.ok) {
      tried.push(`${url}: ${got.why}`);
      log(`key ${fpr}: ${url}: ${got.why}`);
      continue;
    }
    const v = await judgeKey(got.data, fpr, now);
    if (!v.ok) {
      note(url, v);
      log(`key ${fpr}: ${url}: refused (${v.why})`);
      continue;
    }
    if (!req.readOnly) {
      await mkdir(join(req.cacheDir, 'gentoo', 'keys'), { recursive: true });
      await writeFile(`${cached}.part`, v.key.armor());
      await rename(`${cached}.part`, cached);
    }
    log(`key ${fpr} (${pin.role}): from ${url}, expires ${v.expires}${req.readOnly ? '' : '; cached'}`);
    return { key: v.key, resolved: { fingerprint: fpr, role: pin.role, expires: v.expires, source: url } };
  }

  if (!tried.length) {
    throw gentooError('EGENTOO_KEY_FETCH', `key ${fpr} (${pin.role}): no source to fetch it from (gentoo.keys.sources is empty and no WKD address); ${refreshHint(pin, req)}`);
  }
  if (expired) {
    throw gentooError('EGENTOO_KEY_EXPIRED', `key ${fpr} (${pin.role}) expired (${expired}) in every copy found; ${refreshHint(pin, req)}`, { details: tried });
  }
  throw gentooError('EGENTOO_KEY_FETCH', `key ${fpr} (${pin.role}): no source served it (${tried.join('; ')}); ${refreshHint(pin, req)}`, { details: tried });
}

/**
 * Resolves every pinned key (from the file, the cache or the sources), then
 * writes them as one armored keyring `<cache>/gentoo/keys/pinned-<hash>.asc`,
 * the file the stages build their gpgv keyrings from.
 */
export async function resolveKeys(req: KeyRequest): Promise<{ file: string; keys: ResolvedKey[] }> {
  const pinned = req.pinned.filter((p, i, all) => all.findIndex((q) => normalizeFingerprint(q.fingerprint) === normalizeFingerprint(p.fingerprint)) === i);
  const got = [];
  for (const pin of pinned) got.push(await resolveOne(pin, req));
  const packets = Buffer.concat(got.map((g) => Buffer.from(g.key.toPacketList().write() as Uint8Array)));
  const id = createHash('sha256').update(pinned.map((p) => normalizeFingerprint(p.fingerprint)).sort().join(',')).digest('hex').slice(0, 16);
  const dir = req.outDir ?? join(req.cacheDir, 'gentoo', 'keys');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `pinned-${id}.asc`);
  await writeFile(`${file}.part`, openpgp.armor(openpgp.enums.armor.publicKey, packets));
  await rename(`${file}.part`, file);
  return { file, keys: got.map((g) => g.resolved) };
}
