// OpenPGP checks through gpgv. A temporary keyring holds exactly the keys of
// the profile's keyring file; gpgv's machine-readable status lines are then
// checked for a valid signature whose key (or primary key) has the pinned
// fingerprint. "Good signature" from any other key in the file is refused.

import { mkdtemp, readFile, rm, access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from '../seam/command.ts';
import type { RunOptions, RunResult } from '../seam/run.ts';
import { run } from '../seam/run.ts';
import { gentooCmd } from './commands.ts';
import { gentooError, type GentooErrorCode } from './errors.ts';

/** How helpers run commands: the seam's run() by default, a stage's io.run inside a stage. */
export type Runner = (command: Command, opts?: Pick<RunOptions, 'capture' | 'okExitCodes' | 'onLine'>) => Promise<RunResult>;
export const seamRunner: Runner = (command, opts) => run(command, opts);

export function normalizeFingerprint(fpr: string): string {
  return fpr.replace(/\s+/g, '').toUpperCase();
}

export interface GpgStatus {
  valid: { signingFingerprint: string; primaryFingerprint: string }[];
  /** BADSIG, ERRSIG, EXPKEYSIG, REVKEYSIG, EXPSIG, NO_PUBKEY lines (keyword + key id). */
  problems: string[];
  goodsig: boolean;
}

export function parseGpgStatus(stdout: string): GpgStatus {
  const status: GpgStatus = { valid: [], problems: [], goodsig: false };
  for (const line of stdout.split('\n')) {
    const m = /^\[GNUPG:\] (\S+)(?: (.*))?$/.exec(line.trim());
    if (!m) continue;
    const [, keyword, rest = ''] = m;
    const fields = rest.split(' ');
    switch (keyword) {
      case 'GOODSIG':
        status.goodsig = true;
        break;
      case 'VALIDSIG': {
        const signing = fields[0] ?? '';
        // The primary key's fingerprint is the last field (field 10); older
        // gpg versions may omit it, then the signing key is the primary key.
        const primary = fields.length >= 10 ? fields[9]! : signing;
        status.valid.push({ signingFingerprint: signing.toUpperCase(), primaryFingerprint: primary.toUpperCase() });
        break;
      }
      case 'BADSIG':
      case 'ERRSIG':
      case 'EXPKEYSIG':
      case 'REVKEYSIG':
      case 'EXPSIG':
      case 'NO_PUBKEY':
        status.problems.push(`${keyword} ${fields[0] ?? ''}`.trim());
        break;
    }
  }
  return status;
}

/** Decides whether gpgv's status says: signed by the pinned key, and nothing wrong. */
export function checkStatus(status: GpgStatus, fingerprint: string): { ok: true } | { ok: false; why: string } {
  const want = normalizeFingerprint(fingerprint);
  if (status.problems.length) return { ok: false, why: status.problems.join(', ') };
  if (!status.goodsig || !status.valid.length) return { ok: false, why: 'no valid signature' };
  const byPinned = status.valid.find((v) => v.primaryFingerprint === want || v.signingFingerprint === want);
  if (!byPinned) {
    return { ok: false, why: `signed by ${status.valid.map((v) => v.primaryFingerprint).join(', ')}, not by the pinned key ${want}` };
  }
  return { ok: true };
}

export interface Keyring {
  path: string;
  dispose(): Promise<void>;
}

/** Builds a throwaway binary keyring from an armored key file (the profile's keyring). */
export async function makeKeyring(armoredKeyFile: string | undefined, tmpParent: string, runner: Runner = seamRunner): Promise<Keyring> {
  if (!armoredKeyFile) {
    throw gentooError('EGENTOO_KEYRING', 'no keyring: the gentoo-keys stage resolved no keys (see its log); pass --keyring FILE on a builder without network access');
  }
  try {
    await access(armoredKeyFile);
  } catch {
    throw gentooError('EGENTOO_KEYRING', `keyring file ${armoredKeyFile} is missing; rerun gentoo-keys, or fix --keyring (Gentoo release keys: https://www.gentoo.org/downloads/signatures/)`);
  }
  const dir = await mkdtemp(join(tmpParent, 'hnforge-gpg-'));
  const path = join(dir, 'keyring.gpg');
  try {
    await runner(gentooCmd.gpgDearmor(dir, armoredKeyFile, path));
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw gentooError('EGENTOO_KEYRING', `cannot read ${armoredKeyFile} as an armored OpenPGP key file; replace it with the exported public key`, { cause: e });
  }
  return { path, dispose: () => rm(dir, { recursive: true, force: true }) };
}

async function gpgv(command: Command, runner: Runner): Promise<GpgStatus> {
  // 1: bad signature, 2: key missing or other error; the status lines say which.
  const { stdout } = await runner(command, { capture: true, okExitCodes: [1, 2] });
  return parseGpgStatus(stdout);
}

/** Verifies `file` against the detached signature `signature`; throws `code` if it is not signed by `fingerprint`. */
export async function verifyDetached(
  file: string,
  signature: string,
  keyring: Keyring,
  fingerprint: string,
  opts: { runner?: Runner; code?: GentooErrorCode; what?: string } = {},
): Promise<void> {
  const status = await gpgv(gentooCmd.gpgvDetached(keyring.path, signature, file), opts.runner ?? seamRunner);
  const verdict = checkStatus(status, fingerprint);
  if (!verdict.ok) {
    throw gentooError(
      opts.code ?? 'EGENTOO_SIGNATURE',
      `${opts.what ?? file}: OpenPGP signature refused (${verdict.why}); the file is not what Gentoo signed, nothing was unpacked`,
    );
  }
}

/** Verifies a clearsigned file and returns only the signed text (never the text around it). */
export async function verifyClearsigned(
  signedFile: string,
  keyring: Keyring,
  fingerprint: string,
  opts: { runner?: Runner; code?: GentooErrorCode; what?: string } = {},
): Promise<string> {
  const out = `${signedFile}.verified`;
  await rm(out, { force: true });
  const status = await gpgv(gentooCmd.gpgvClearsigned(keyring.path, signedFile, out), opts.runner ?? seamRunner);
  const verdict = checkStatus(status, fingerprint);
  if (!verdict.ok) {
    await rm(out, { force: true });
    throw gentooError(
      opts.code ?? 'EGENTOO_INDEX_SIGNATURE',
      `${opts.what ?? signedFile}: clearsigned text refused (${verdict.why}); check the mirror and gentoo.releaseKeyFingerprint`,
    );
  }
  try {
    return await readFile(out, 'utf8');
  } finally {
    await rm(out, { force: true });
  }
}
