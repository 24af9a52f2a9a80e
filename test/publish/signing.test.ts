// Signatures over SHA256SUMS, checked twice: in-process (verifyDetached) and
// by what a node runs: Debian's gpgv with a binary keyring, and systemd-pull's
// `gpg --no-default-keyring --keyring=FILE --verify`. gpg runs with a
// throwaway GNUPGHOME so nothing touches the user's keyrings.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HnError } from '../../pipeline/errors.ts';
import { checkStatus, parseGpgStatus } from '../../pipeline/gentoo/openpgp.ts';
import { KEY_FILES, keygen } from '../../pipeline/publish/keygen.ts';
import { exportKeyring, generateSigningKey, keyringBytes, signDetached, verifyDetached, type SigningKey } from '../../pipeline/publish/signing.ts';
import { formatSums } from '../../pipeline/publish/sums.ts';

function tool(name: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const GPGV = tool('gpgv');
const GPG = tool('gpg');
if (!GPGV) console.warn('signing.test.ts: gpgv is not installed (Debian package gpgv): the gpgv checks are SKIPPED');
if (!GPG) console.warn('signing.test.ts: gpg is not installed (Debian package gpg): the systemd-pull command line checks are SKIPPED');

const DAY = 86_400;
const SUMS = formatSums(
  new Map([
    ['hn-root_1.img.zst', '1'.repeat(64)],
    ['hn-root_2.img.zst', '2'.repeat(64)],
  ]),
);

let dir: string;
let gnupgHome: string;
let a: SigningKey; // the publisher's key
let b: SigningKey; // someone else's
let expired: SigningKey; // made 3 days ago, valid for 1 day
let ringA: string;
let ringExpired: string;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HnError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'resolved';
}

/** Writes data and signature to files and runs gpgv on them, status lines on fd 1. */
async function gpgv(keyring: string, data: string | Uint8Array, sig: Uint8Array | string) {
  const d = await mkdtemp(join(dir, 'gpgv-'));
  await writeFile(join(d, 'SHA256SUMS'), data);
  await writeFile(join(d, 'SHA256SUMS.gpg'), sig);
  const r = await execa(GPGV!, ['--status-fd', '1', '--keyring', keyring, join(d, 'SHA256SUMS.gpg'), join(d, 'SHA256SUMS')], {
    env: { GNUPGHOME: gnupgHome, LC_ALL: 'C' },
    reject: false,
  });
  return { exitCode: r.exitCode, status: r.stdout, stderr: r.stderr, verdict: (fpr: string) => checkStatus(parseGpgStatus(r.stdout), fpr) };
}

/**
 * systemd-pull's verification (verify_gpg() in src/import/pull-common.c):
 * these options, a fresh --homedir, the data on stdin as "-", and only the
 * exit status is looked at.
 */
async function systemdPullGpg(keyring: string, data: string | Uint8Array, sig: Uint8Array) {
  const d = await mkdtemp(join(dir, 'gpg-'));
  const home = await mkdtemp(join(dir, 'gpghome-'));
  await writeFile(join(d, 'SHA256SUMS.gpg'), sig);
  const args = ['--no-options', '--no-default-keyring', '--no-auto-key-locate', '--no-auto-check-trustdb', '--batch', '--trust-model=always'];
  return execa(GPG!, [...args, `--homedir=${home}`, `--keyring=${keyring}`, '--verify', join(d, 'SHA256SUMS.gpg'), '-'], {
    input: data,
    env: { LC_ALL: 'C' },
    reject: false,
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hnforge-signing-'));
  gnupgHome = await mkdtemp(join(dir, 'gnupg-'));
  const now = Date.now();
  [a, b, expired] = await Promise.all([
    generateSigningKey({ name: 'Publisher', email: 'images@example.org' }),
    generateSigningKey({ name: 'Someone else' }),
    generateSigningKey({ name: 'Old key', date: new Date(now - 3 * DAY * 1000), expiresInSeconds: DAY }),
  ]);
  ringA = join(dir, 'a.pub.gpg');
  ringExpired = join(dir, 'expired.pub.gpg');
  expect(await exportKeyring(a.publicKey, ringA)).toEqual([a.fingerprint]);
  await exportKeyring(expired.publicKey, ringExpired);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('signing SHA256SUMS', () => {
  it('makes v4 Ed25519 keys that sign with the primary key and have no subkeys', async () => {
    const key = await openpgp.readKey({ armoredKey: a.publicKey });
    expect(key.keyPacket.version).toBe(4);
    expect(key.getAlgorithmInfo()).toEqual({ algorithm: 'eddsaLegacy', curve: 'ed25519Legacy' });
    expect(key.subkeys).toHaveLength(0);
    expect(a.fingerprint).toMatch(/^[0-9A-F]{40}$/);
    expect(a.privateKey).toContain('BEGIN PGP PRIVATE KEY BLOCK');
    expect((await openpgp.readPrivateKey({ armoredKey: a.privateKey })).isDecrypted()).toBe(true);
  });

  it('a binary detached signature verifies in-process, and with gpgv: exit 0, VALIDSIG of the key [needs gpgv]', async () => {
    const sig = await signDetached(SUMS, a.privateKey);
    expect(sig[0]! & 0x80).toBe(0x80); // an OpenPGP packet, not armor
    const v = await verifyDetached(SUMS, sig, a.publicKey);
    expect(v.fingerprint).toBe(a.fingerprint);
    expect(Math.abs(v.created.getTime() - Date.now())).toBeLessThan(60_000);
    // The binary keyring file reads in-process too.
    expect((await verifyDetached(Buffer.from(SUMS), sig, await readFile(ringA))).fingerprint).toBe(a.fingerprint);
    if (!GPGV) return;
    const r = await gpgv(ringA, SUMS, sig);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.status).toMatch(new RegExp(`^\\[GNUPG:\\] VALIDSIG ${a.fingerprint} .* ${a.fingerprint}$`, 'm'));
    expect(r.verdict(a.fingerprint)).toEqual({ ok: true });
  });

  it.skipIf(!GPG)("systemd-pull's gpg command line accepts it and refuses a tampered file [needs gpg]", async () => {
    const sig = await signDetached(SUMS, a.privateKey);
    const ok = await systemdPullGpg(ringA, SUMS, sig);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stderr).toContain('Good signature from "Publisher <images@example.org>"');
    const bad = await systemdPullGpg(ringA, SUMS.replace('hn-root_2', 'hn-root_3'), sig);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toContain('BAD signature');
  });

  it.skipIf(!GPGV)('gpgv takes an armored signature too, but not an armored keyring (hence signing-key.pub.gpg) [needs gpgv]', async () => {
    const armored = (await openpgp.readSignature({ binarySignature: await signDetached(SUMS, a.privateKey) })).armor();
    expect((await gpgv(ringA, SUMS, armored)).exitCode).toBe(0);
    expect((await verifyDetached(SUMS, armored, a.publicKey)).fingerprint).toBe(a.fingerprint);
    const armoredRing = join(dir, 'a.pub.asc');
    await writeFile(armoredRing, a.publicKey);
    expect((await gpgv(armoredRing, SUMS, armored)).exitCode).not.toBe(0);
  });

  it('a tampered SHA256SUMS is refused by both [needs gpgv]', async () => {
    const sig = await signDetached(SUMS, a.privateKey);
    const tampered = SUMS.replace('2'.repeat(64), '3'.repeat(64));
    expect(await codeOf(verifyDetached(tampered, sig, a.publicKey))).toMatch(/^ESIGN_BAD: bad signature by [0-9A-F]{40}/);
    // Truncation, as a reader racing a publish may see (readers retry).
    expect(await codeOf(verifyDetached(SUMS.slice(0, -1), sig, a.publicKey))).toMatch(/^ESIGN_BAD/);
    if (!GPGV) return;
    const r = await gpgv(ringA, tampered, sig);
    expect(r.exitCode).not.toBe(0);
    expect(r.status).toMatch(/^\[GNUPG:\] BADSIG /m);
    expect(r.status).not.toMatch(/VALIDSIG/);
  });

  it('a signature by another key is refused by both, naming the key [needs gpgv]', async () => {
    const sig = await signDetached(SUMS, b.privateKey);
    const e = await codeOf(verifyDetached(SUMS, sig, a.publicKey));
    expect(e).toMatch(/^ESIGN_UNKNOWN_KEY: signed by key ID [0-9A-F]{16}, which is not in the keyring/);
    expect(e).toContain(b.fingerprint.slice(-16));
    expect(e).toContain(a.fingerprint);
    if (!GPGV) return;
    const r = await gpgv(ringA, SUMS, sig);
    expect(r.exitCode).not.toBe(0);
    expect(r.status).toMatch(/^\[GNUPG:\] NO_PUBKEY /m);
    expect(r.verdict(a.fingerprint).ok).toBe(false);
  });

  it('an expired key: hnforge will not sign with it and refuses its signatures; gpgv exits 0 but says EXPKEYSIG [needs gpgv]', async () => {
    expect(await codeOf(signDetached(SUMS, expired.privateKey))).toMatch(/^ESIGN_KEY_EXPIRED: the signing key [0-9A-F]{40} expired on /);
    // Signed while it was valid (two days ago), checked now.
    const sig = await signDetached(SUMS, expired.privateKey, { date: new Date(Date.now() - 2.5 * DAY * 1000) });
    expect(await codeOf(verifyDetached(SUMS, sig, expired.publicKey))).toMatch(/^ESIGN_KEY_EXPIRED: .* expired on .*make a new key/);
    // ...and accepted when checked as of a time the key was valid: the refusal is the expiry, not the signature.
    expect((await verifyDetached(SUMS, sig, expired.publicKey, { date: new Date(Date.now() - 2.25 * DAY * 1000) })).fingerprint).toBe(expired.fingerprint);
    if (!GPGV) return;
    const r = await gpgv(ringExpired, SUMS, sig);
    // gpgv's (and gpg's, so systemd-pull's) exit status does not refuse it: only the status line does.
    expect(r.exitCode).toBe(0);
    expect(r.status).toMatch(/^\[GNUPG:\] EXPKEYSIG /m);
    expect(r.verdict(expired.fingerprint)).toEqual({ ok: false, why: expect.stringContaining('EXPKEYSIG') });
    if (GPG) expect((await systemdPullGpg(ringExpired, SUMS, sig)).exitCode).toBe(0); // systemd-pull accepts it
  });

  it('a revoked key is refused', async () => {
    const key = await generateSigningKey({ name: 'Revoked' });
    const sig = await signDetached(SUMS, key.privateKey);
    const { publicKey: revoked } = await openpgp.revokeKey({ key: await openpgp.readPrivateKey({ armoredKey: key.privateKey }), format: 'armored' });
    expect((await verifyDetached(SUMS, sig, key.publicKey)).fingerprint).toBe(key.fingerprint);
    expect(await codeOf(verifyDetached(SUMS, sig, revoked))).toMatch(/^ESIGN_KEY_REVOKED/);
  });

  it('a passphrase-protected key signs only with its passphrase', async () => {
    const key = await generateSigningKey({ name: 'Locked', passphrase: 'correct horse' });
    expect(key.privateKey).toContain('BEGIN PGP PRIVATE KEY BLOCK');
    expect(await codeOf(signDetached(SUMS, key.privateKey))).toMatch(/^ESIGN_PASSPHRASE: .* no passphrase was given/);
    expect(await codeOf(signDetached(SUMS, key.privateKey, { passphrase: 'wrong' }))).toMatch(/^ESIGN_PASSPHRASE: cannot unlock/);
    const sig = await signDetached(SUMS, key.privateKey, { passphrase: 'correct horse' });
    expect((await verifyDetached(SUMS, sig, key.publicKey)).fingerprint).toBe(key.fingerprint);
  });

  it('unreadable inputs are ESIGN_FORMAT, and a keyring never carries secret key material', async () => {
    expect(await codeOf(signDetached(SUMS, a.publicKey))).toMatch(/^ESIGN_FORMAT: the signing key is not an armored OpenPGP private key/);
    expect(await codeOf(verifyDetached(SUMS, new Uint8Array([1, 2, 3]), a.publicKey))).toMatch(/^ESIGN_FORMAT/);
    expect(await codeOf(verifyDetached(SUMS, await signDetached(SUMS, a.privateKey), 'not a key'))).toMatch(/^ESIGN_FORMAT/);
    const { bytes } = await keyringBytes(a.privateKey);
    const keys = await openpgp.readKeys({ binaryKeys: bytes });
    expect(keys.map((k) => k.isPrivate())).toEqual([false]);
    expect(bytes).toEqual(await readFile(ringA));
  });

  it('a keyring with two keys (rotation) verifies signatures by either', async () => {
    const both = join(dir, 'ab.pub.gpg');
    expect(await exportKeyring(`${a.publicKey}\n${b.publicKey}`, both)).toEqual([a.fingerprint, b.fingerprint]);
    const sigB = await signDetached(SUMS, b.privateKey);
    expect((await verifyDetached(SUMS, sigB, await readFile(both))).fingerprint).toBe(b.fingerprint);
    if (GPGV) expect((await gpgv(both, SUMS, sigB)).status).toContain(`VALIDSIG ${b.fingerprint}`);
  });
});

describe('keygen', () => {
  it('writes the private key 0600, the public key and a gpgv keyring, and will not overwrite them without force [needs gpgv]', async () => {
    const out = join(dir, 'keys');
    const made = await keygen({ out, name: 'Example nodes', email: 'ops@example.org' });
    expect(made.privateKey).toBe(join(out, KEY_FILES.privateKey));
    expect((await stat(made.privateKey)).mode & 0o777).toBe(0o600);
    expect((await stat(made.keyring)).mode & 0o077).toBe(0o044 & ~process.umask());
    const privateKey = await readFile(made.privateKey, 'utf8');
    const publicKey = await readFile(made.publicKey, 'utf8');
    expect(publicKey).toContain('BEGIN PGP PUBLIC KEY BLOCK');

    const again = await codeOf(keygen({ out }));
    expect(again).toMatch(/^ESIGN_KEY_EXISTS: not replacing .*signing-key\.asc.*--force/);
    expect(await readFile(made.privateKey, 'utf8')).toBe(privateKey);

    const sig = await signDetached(SUMS, privateKey);
    expect((await verifyDetached(SUMS, sig, publicKey)).fingerprint).toBe(made.fingerprint);
    if (GPGV) expect((await gpgv(made.keyring, SUMS, sig)).status).toContain(`VALIDSIG ${made.fingerprint}`);

    const replaced = await keygen({ out, force: true });
    expect(replaced.fingerprint).not.toBe(made.fingerprint);
    expect((await stat(replaced.privateKey)).mode & 0o777).toBe(0o600);
    expect(await codeOf(verifyDetached(SUMS, sig, await readFile(replaced.keyring)))).toMatch(/^ESIGN_UNKNOWN_KEY/);
    const leftovers = (await import('node:fs/promises')).readdir(out);
    expect((await leftovers).sort()).toEqual(Object.values(KEY_FILES).sort());
  });
});
