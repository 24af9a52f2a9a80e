// Where the publisher's key and the reader's keyring come from: a flag, else
// an environment variable (CI secrets arrive as variables: the value may be the
// armored key itself or a path to it). One home for both rules.

import { readFile } from 'node:fs/promises';
import { HnError } from '../errors.ts';
import { keyringBytes, publicKeyOf } from './signing.ts';

export const SIGNING_ENV = { key: 'HNFORGE_SIGNING_KEY', passphrase: 'HNFORGE_KEY_PASSPHRASE', keyring: 'HNFORGE_KEYRING' } as const;

export interface SigningKey {
  armored: string;
  passphrase?: string;
  /** Where it came from, for messages ("--signing-key /etc/hnforge/keys/signing-key.asc"). */
  from: string;
}

/** The signing key from `--signing-key PATH`, else $HNFORGE_SIGNING_KEY (a path or the armored key); undefined when neither. */
export async function loadSigningKey(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<SigningKey | undefined> {
  const value = path ?? env[SIGNING_ENV.key]?.trim();
  if (!value) return undefined;
  const passphrase = env[SIGNING_ENV.passphrase] || undefined;
  if (path === undefined && value.startsWith('-----BEGIN PGP')) return { armored: value, passphrase, from: `$${SIGNING_ENV.key}` };
  const from = path !== undefined ? `--signing-key ${path}` : `${SIGNING_ENV.key}=${value}`;
  try {
    return { armored: await readFile(value, 'utf8'), passphrase, from };
  } catch (e) {
    throw new HnError('EUSAGE', `${from}: cannot read the key file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give the armored private key hnforge keygen wrote (signing-key.asc)`, { cause: e });
  }
}

/** The binary public keyring that verifies what `key` signs (the file baked into images); the key is unlocked and checked. */
export async function publicKeyringOf(key: Pick<SigningKey, 'armored' | 'passphrase'>): Promise<{ bytes: Uint8Array; fingerprints: string[] }> {
  const { publicKey } = await publicKeyOf(key.armored, { passphrase: key.passphrase });
  return keyringBytes(publicKey);
}

/** The keyring readers verify with: `--keyring PATH`, else $HNFORGE_KEYRING (path or armored), else the signing key's public part. */
export async function loadKeyring(path: string | undefined, signingKey?: SigningKey, env: NodeJS.ProcessEnv = process.env): Promise<Uint8Array | undefined> {
  const value = path ?? env[SIGNING_ENV.keyring];
  if (value) {
    if (value.trimStart().startsWith('-----BEGIN PGP')) return Buffer.from(value);
    try {
      return await readFile(value);
    } catch (e) {
      throw new HnError('ESIGN_FORMAT', `${path ? '--keyring' : `$${SIGNING_ENV.keyring}`}: cannot read ${value} (${(e as NodeJS.ErrnoException).code ?? e})`, { cause: e });
    }
  }
  return signingKey ? (await publicKeyringOf(signingKey)).bytes : undefined;
}
