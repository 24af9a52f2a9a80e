// Where the publisher's key and the reader's keyring come from: a flag, else
// an environment variable (CI secrets arrive as variables: the value may be the
// armored key itself or a path to it). One home for both rules.

import { readFile } from 'node:fs/promises';
import { HnError } from '../errors.ts';
import { keyringBytes } from './signing.ts';

export const SIGNING_ENV = { key: 'HNFORGE_SIGNING_KEY', passphrase: 'HNFORGE_KEY_PASSPHRASE', keyring: 'HNFORGE_KEYRING' } as const;

export interface SigningKey {
  armored: string;
  passphrase?: string;
  /** Where it came from, for messages ("--signing-key /etc/hnforge/keys/signing-key.asc"). */
  from: string;
}

async function readKeyText(value: string, from: string, what: string): Promise<string> {
  if (value.trimStart().startsWith('-----BEGIN PGP')) return value;
  try {
    return await readFile(value, 'utf8');
  } catch (e) {
    throw new HnError('ESIGN_FORMAT', `${from}: cannot read the ${what} ${value} (${(e as NodeJS.ErrnoException).code ?? e}); make one with hnforge keygen --out DIR`, { cause: e });
  }
}

/** The signing key from `--signing-key PATH`, else $HNFORGE_SIGNING_KEY (a path or the armored key); undefined when neither. */
export async function loadSigningKey(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<SigningKey | undefined> {
  const value = path ?? env[SIGNING_ENV.key];
  if (!value) return undefined;
  const from = path ? `--signing-key` : `$${SIGNING_ENV.key}`;
  return { armored: await readKeyText(value, from, 'signing key'), passphrase: env[SIGNING_ENV.passphrase] || undefined, from };
}

/** The binary public keyring that verifies what `key` signs (the file baked into images). */
export async function publicKeyringOf(key: SigningKey): Promise<{ bytes: Uint8Array; fingerprints: string[] }> {
  return keyringBytes(key.armored);
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
