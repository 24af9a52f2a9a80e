// OpenPGP signing of SHA256SUMS with the `openpgp` package, in the form
// the readers on a node understand:
//
// - Keys are v4 Ed25519 ("EdDSA legacy", curve ed25519Legacy): the primary
//   key certifies and signs, with no encryption subkey (nothing is ever
//   encrypted to it). GnuPG 2.2 (Debian 12) reads v4 EdDSA keys; it does
//   not read the v6 keys or the RFC 9580 Ed25519 algorithm.
// - SHA256SUMS.gpg is a binary detached signature of type "binary document"
//   over the exact bytes of SHA256SUMS, which is what mkosi's
//   `gpg --detach-sign` writes. gpgv 2.2.40 accepts a binary or an armored
//   detached signature alike (checked by test/publish/signing.test.ts).
// - The public keyring for `gpgv --keyring FILE` and systemd-pull's
//   `gpg --no-default-keyring --keyring=FILE --verify` is a file of binary
//   public key packets: gpgv 2.2.40 refuses an armored file ("invalid
//   packet (ctb=2d)"). gpgv takes a path without a slash as relative to
//   ~/.gnupg, so hand it an absolute path.
//
// gpgv and gpg exit 0 for a good signature by an expired key (they only add
// EXPKEYSIG to their status output), and systemd-pull looks at the exit
// status alone. So hnforge refuses to sign with an expired or revoked key,
// and verifyDetached refuses such signatures, as should anything that
// checks gpgv's status lines.

import { rename, writeFile } from 'node:fs/promises';
import * as openpgp from 'openpgp';
import { HnError, usageError } from '../errors.ts';

export interface GenerateKeyOptions {
  /** The user ID's name, e.g. "Example hardware nodes image signing". */
  name: string;
  email?: string;
  /** Encrypts the private key; none by default (a CI secret holds it as is). */
  passphrase?: string;
  /** Seconds from creation until the key expires; never by default. */
  expiresInSeconds?: number;
  /** Creation time (tests make keys that expired in the past); now by default. */
  date?: Date;
}

export interface SigningKey {
  /** Armored private key ("-----BEGIN PGP PRIVATE KEY BLOCK-----"). */
  privateKey: string;
  /** Armored public key. */
  publicKey: string;
  /** Primary key fingerprint, 40 uppercase hex digits as gpg prints it. */
  fingerprint: string;
}

export interface Verified {
  /** Fingerprint of the signer's primary key (uppercase hex): the identity to pin. */
  fingerprint: string;
  /** Fingerprint of the key (primary or subkey) that made the signature. */
  signingKeyFingerprint: string;
  /** When the signature says it was made. */
  created: Date;
}

const fpr = (key: { getFingerprint(): string }) => key.getFingerprint().toUpperCase();

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

function bytes(data: Uint8Array | string): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

/** Armored text in a byte array (a .asc file read as bytes) is treated as text. */
function armoredText(data: Uint8Array | string): string | undefined {
  if (typeof data === 'string') return data;
  const head = Buffer.from(data.subarray(0, 64)).toString('latin1').trimStart();
  return head.startsWith('-----BEGIN PGP') ? Buffer.from(data).toString('utf8') : undefined;
}

export async function generateSigningKey(opts: GenerateKeyOptions): Promise<SigningKey> {
  if (!opts.name.trim()) throw usageError('a signing key needs a non-empty name');
  if (opts.expiresInSeconds !== undefined && !(Number.isInteger(opts.expiresInSeconds) && opts.expiresInSeconds > 0)) {
    throw usageError(`key expiry must be a positive whole number of seconds, not ${opts.expiresInSeconds}`);
  }
  let key;
  try {
    key = await openpgp.generateKey({
      type: 'ecc',
      curve: 'ed25519Legacy',
      subkeys: [],
      userIDs: [{ name: opts.name, ...(opts.email ? { email: opts.email } : {}) }],
      ...(opts.passphrase ? { passphrase: opts.passphrase } : {}),
      ...(opts.expiresInSeconds ? { keyExpirationTime: opts.expiresInSeconds } : {}),
      ...(opts.date ? { date: opts.date } : {}),
      format: 'object',
    });
  } catch (e) {
    // openpgp's only user-caused failure here is a user ID it cannot encode (a malformed email).
    throw usageError(`cannot make a key for ${JSON.stringify(opts.name)} <${opts.email ?? ''}>: ${message(e)}`);
  }
  return { privateKey: key.privateKey.armor(), publicKey: key.publicKey.armor(), fingerprint: fpr(key.publicKey) };
}

/** Refuses a key that is revoked or expired at `date`, for signing and for verifying alike. */
async function checkKeyValid(key: openpgp.Key, date: Date, what: string): Promise<void> {
  if (await key.isRevoked(undefined, undefined, date)) {
    throw new HnError('ESIGN_KEY_REVOKED', `${what} ${fpr(key)} has been revoked`);
  }
  const expires = await key.getExpirationTime();
  if (expires === null) throw new HnError('ESIGN_FORMAT', `${what} ${fpr(key)} has no valid self-signature`);
  if (expires instanceof Date && expires.getTime() <= date.getTime()) {
    throw new HnError('ESIGN_KEY_EXPIRED', `${what} ${fpr(key)} expired on ${expires.toISOString()}; make a new key (keygen) and publish its keyring to the nodes`);
  }
}

async function readPrivate(armored: string, passphrase: string | undefined): Promise<openpgp.PrivateKey> {
  let key: openpgp.PrivateKey;
  try {
    key = await openpgp.readPrivateKey({ armoredKey: armored });
  } catch (e) {
    throw new HnError('ESIGN_FORMAT', `the signing key is not an armored OpenPGP private key: ${message(e)}`, { cause: e });
  }
  if (key.isDecrypted()) return key;
  if (passphrase === undefined) {
    throw new HnError('ESIGN_PASSPHRASE', `the signing key ${fpr(key)} is passphrase-protected and no passphrase was given`);
  }
  try {
    return await openpgp.decryptKey({ privateKey: key, passphrase });
  } catch (e) {
    throw new HnError('ESIGN_PASSPHRASE', `cannot unlock the signing key ${fpr(key)}: ${message(e)}`, { cause: e });
  }
}

/**
 * A binary detached signature over `data` (the bytes SHA256SUMS.gpg holds).
 * `date` is the signature's creation time, now by default.
 */
export async function signDetached(
  data: Uint8Array | string,
  privateKeyArmored: string,
  opts: { passphrase?: string; date?: Date } = {},
): Promise<Uint8Array> {
  const key = await readPrivate(privateKeyArmored, opts.passphrase);
  const date = opts.date ?? new Date();
  await checkKeyValid(key, date, 'the signing key');
  try {
    return await openpgp.sign({
      message: await openpgp.createMessage({ binary: bytes(data) }),
      signingKeys: key,
      detached: true,
      format: 'binary',
      date,
    });
  } catch (e) {
    throw new HnError('ESIGN_FORMAT', `the key ${fpr(key)} cannot sign: ${message(e)}`, { cause: e });
  }
}

/** Public keys from armored text (one or several blocks) or binary key packets (a keyring file). */
export async function readPublicKeys(keys: Uint8Array | string): Promise<openpgp.PublicKey[]> {
  const read: openpgp.Key[] = [];
  try {
    const text = armoredText(keys);
    if (text === undefined) read.push(...(await openpgp.readKeys({ binaryKeys: keys as Uint8Array })));
    else {
      // openpgp reads one armor block per call; a keyring file may hold several (key rotation).
      const blocks = text.match(/-----BEGIN PGP (PUBLIC|PRIVATE) KEY BLOCK-----[\s\S]*?-----END PGP \1 KEY BLOCK-----/g) ?? [text];
      for (const block of blocks) read.push(...(await openpgp.readKeys({ armoredKeys: block })));
    }
  } catch (e) {
    throw new HnError('ESIGN_FORMAT', `the keyring is not OpenPGP public keys: ${message(e)}`, { cause: e });
  }
  if (!read.length) throw new HnError('ESIGN_FORMAT', 'the keyring holds no keys');
  return read.map((k) => k.toPublic());
}

async function readSignature(signature: Uint8Array | string): Promise<openpgp.Signature> {
  try {
    const text = armoredText(signature);
    return text !== undefined
      ? await openpgp.readSignature({ armoredSignature: text })
      : await openpgp.readSignature({ binarySignature: signature as Uint8Array });
  } catch (e) {
    throw new HnError('ESIGN_FORMAT', `the signature is not an OpenPGP signature: ${message(e)}`, { cause: e });
  }
}

/**
 * Checks a detached signature (binary or armored) over `data` against
 * `publicKeys` (armored or a binary keyring). Like gpgv, every signature in
 * the file must verify; unlike gpgv's exit status, one by an expired or
 * revoked key is refused. `date` is "now" for expiry, for tests.
 */
export async function verifyDetached(
  data: Uint8Array | string,
  signature: Uint8Array | string,
  publicKeys: Uint8Array | string,
  opts: { date?: Date } = {},
): Promise<Verified> {
  const keys = await readPublicKeys(publicKeys);
  const sig = await readSignature(signature);
  const date = opts.date ?? new Date();
  const ids = sig.getSigningKeyIDs();
  if (!ids.length) throw new HnError('ESIGN_FORMAT', 'the signature file holds no signature');

  const signers: { key: openpgp.PublicKey; signing: openpgp.PublicKey | openpgp.Subkey }[] = [];
  for (const id of ids) {
    const key = keys.find((k) => k.getKeys(id).length > 0);
    if (!key) {
      throw new HnError(
        'ESIGN_UNKNOWN_KEY',
        `signed by key ID ${id.toHex().toUpperCase()}, which is not in the keyring (${keys.map(fpr).join(', ')})`,
      );
    }
    await checkKeyValid(key, date, 'the signing key');
    const signing = key.getKeys(id)[0]!;
    if (signing !== key) {
      const expires = await signing.getExpirationTime(date).catch(() => null);
      if (expires instanceof Date && expires.getTime() <= date.getTime()) {
        throw new HnError('ESIGN_KEY_EXPIRED', `the signing subkey ${fpr(signing)} of ${fpr(key)} expired on ${expires.toISOString()}`);
      }
    }
    signers.push({ key, signing });
  }

  let result;
  try {
    result = await openpgp.verify({
      message: await openpgp.createMessage({ binary: bytes(data) }),
      signature: sig,
      verificationKeys: keys,
      format: 'binary',
      date,
    });
  } catch (e) {
    throw new HnError('ESIGN_BAD', `the signature cannot be checked: ${message(e)}`, { cause: e });
  }
  let created: Date | undefined;
  for (const s of result.signatures) {
    try {
      await s.verified;
    } catch (e) {
      const by = keys.find((k) => k.getKeys(s.keyID).length > 0);
      throw new HnError('ESIGN_BAD', `bad signature by ${by ? fpr(by) : s.keyID.toHex().toUpperCase()} over the data: ${message(e)}`, { cause: e });
    }
    const packet = (await s.signature).packets[0];
    created ??= packet?.created ?? undefined;
  }
  const first = signers[0]!;
  return { fingerprint: fpr(first.key), signingKeyFingerprint: fpr(first.signing), created: created ?? date };
}

/**
 * The public half of an armored private key, for the keyring a build bakes
 * into its image. The key is unlocked and checked (not expired, not revoked)
 * here, so a wrong passphrase or a dead key stops the build before it starts
 * rather than at publishing, after the image is made.
 */
export async function publicKeyOf(
  privateKeyArmored: string,
  opts: { passphrase?: string; date?: Date } = {},
): Promise<{ publicKey: string; fingerprint: string }> {
  const key = await readPrivate(privateKeyArmored, opts.passphrase);
  await checkKeyValid(key, opts.date ?? new Date(), 'the signing key');
  return { publicKey: key.toPublic().armor(), fingerprint: fpr(key) };
}

/** Binary public key packets for `publicArmored` (one or several keys; secret parts are never written). */
export async function keyringBytes(publicArmored: string): Promise<{ bytes: Uint8Array; fingerprints: string[] }> {
  const keys = await readPublicKeys(publicArmored);
  return { bytes: Buffer.concat(keys.map((k) => k.write())), fingerprints: keys.map(fpr) };
}

/**
 * Writes a keyring for `gpgv --keyring PATH` and `gpg --no-default-keyring
 * --keyring=PATH --verify` (binary public key packets, mode 0644), replacing
 * PATH atomically. Returns the fingerprints it holds.
 */
export async function exportKeyring(publicArmored: string, path: string): Promise<string[]> {
  const { bytes: data, fingerprints } = await keyringBytes(publicArmored);
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data, { mode: 0o644 });
  await rename(tmp, path);
  return fingerprints;
}
