// `hnforge keygen`: a new image signing key in a directory, as three files:
//
//   signing-key.asc      armored private key, mode 0600: the publisher's secret
//   signing-key.pub.asc  armored public key: to read, diff and paste
//   signing-key.pub.gpg  binary keyring for `gpgv --keyring` and systemd-pull
//                        (`gpg --no-default-keyring --keyring=... --verify`)
//
// Existing files are never overwritten without `force`: replacing a key
// means every node must be given the new keyring before the next publish.
// All three are written under temporary names first and renamed at the end,
// so an interrupted run leaves no mismatched set.

import { lstat, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { HnError } from '../errors.ts';
import { generateSigningKey, keyringBytes } from './signing.ts';

export const KEY_FILES = {
  privateKey: 'signing-key.asc',
  publicKey: 'signing-key.pub.asc',
  keyring: 'signing-key.pub.gpg',
} as const;

export const DEFAULT_KEY_NAME = 'hnforge image signing key';

export interface KeygenOptions {
  /** Directory for the three files; created (mode 0700) if missing. */
  out: string;
  name?: string;
  email?: string;
  passphrase?: string;
  /** Seconds until the key expires; never by default. */
  expiresInSeconds?: number;
  /** Replace existing key files. */
  force?: boolean;
}

/** What `hnforge keygen --json` prints. Paths are absolute. */
export interface KeygenResult {
  fingerprint: string;
  privateKey: string;
  publicKey: string;
  keyring: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

export async function keygen(opts: KeygenOptions): Promise<KeygenResult> {
  const out = resolve(opts.out);
  const paths = {
    privateKey: join(out, KEY_FILES.privateKey),
    publicKey: join(out, KEY_FILES.publicKey),
    keyring: join(out, KEY_FILES.keyring),
  };
  if (!opts.force) {
    const present = [];
    for (const p of Object.values(paths)) if (await exists(p)) present.push(p);
    if (present.length) {
      throw new HnError('ESIGN_KEY_EXISTS', `not replacing ${present.join(', ')}: pass --force to make a new key (nodes then need the new keyring)`);
    }
  }

  const key = await generateSigningKey({
    name: opts.name ?? DEFAULT_KEY_NAME,
    ...(opts.email ? { email: opts.email } : {}),
    ...(opts.passphrase ? { passphrase: opts.passphrase } : {}),
    ...(opts.expiresInSeconds ? { expiresInSeconds: opts.expiresInSeconds } : {}),
  });
  const { bytes: keyring } = await keyringBytes(key.publicKey);

  await mkdir(out, { recursive: true, mode: 0o700 });
  const files: [keyof typeof paths, string | Uint8Array, number][] = [
    ['privateKey', key.privateKey, 0o600],
    ['publicKey', key.publicKey, 0o644],
    ['keyring', keyring, 0o644],
  ];
  const tmp = (p: string) => `${p}.tmp-${process.pid}`;
  try {
    for (const [name, data, mode] of files) await writeFile(tmp(paths[name]), data, { mode, flag: 'wx' });
    for (const [name] of files) await rename(tmp(paths[name]), paths[name]);
  } finally {
    await Promise.all(files.map(([name]) => rm(tmp(paths[name]), { force: true })));
  }
  return { fingerprint: key.fingerprint, ...paths };
}
