// SHA512 and BLAKE2B (512-bit, as Gentoo's .DIGESTS use) of a file in one read.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { gentooError } from './errors.ts';

export interface FileDigests {
  sha512: string;
  blake2b: string;
  bytes: number;
}

export async function digestFile(path: string): Promise<FileDigests> {
  const sha = createHash('sha512');
  const b2 = createHash('blake2b512');
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const buf = chunk as Buffer;
    sha.update(buf);
    b2.update(buf);
    bytes += buf.length;
  }
  return { sha512: sha.digest('hex'), blake2b: b2.digest('hex'), bytes };
}

/** Throws EGENTOO_DIGEST naming every algorithm that does not match. */
export function checkDigests(actual: FileDigests, expected: { sha512: string; blake2b: string }, what: string): void {
  const bad: string[] = [];
  if (actual.sha512 !== expected.sha512.toLowerCase()) bad.push('SHA512');
  if (actual.blake2b !== expected.blake2b.toLowerCase()) bad.push('BLAKE2B');
  if (bad.length) {
    throw gentooError('EGENTOO_DIGEST', `${what}: ${bad.join(' and ')} digest differs from .DIGESTS; the download was deleted, rerun to fetch it again`, {
      details: bad.map((a) => `${a} expected ${a === 'SHA512' ? expected.sha512 : expected.blake2b}, got ${a === 'SHA512' ? actual.sha512 : actual.blake2b}`),
    });
  }
}
