// Gentoo's release layout, as pure functions: where the index of the latest
// stage3 lives, how its (already verified) body is read, how a pinned
// timestamp maps to file names, and how a .DIGESTS file is read.
//
// Layout under <mirror>/releases/amd64/autobuilds/:
//   latest-stage3-amd64-<variant>.txt         clearsigned; body lines "<path> <bytes>"
//   <TS>/stage3-amd64-<variant>-<TS>.tar.xz   the tarball (TS like 20260503T164604Z)
//   <TS>/stage3-amd64-<variant>-<TS>.tar.xz.asc       detached signature over the tarball
//   <TS>/stage3-amd64-<variant>-<TS>.tar.xz.DIGESTS   "# BLAKE2B HASH" / "# SHA512 HASH" blocks

import { gentooError } from './errors.ts';

export const AUTOBUILDS = 'releases/amd64/autobuilds';

export interface Stage3Entry {
  /** Path relative to the autobuilds directory, e.g. 20260503T164604Z/stage3-amd64-systemd-20260503T164604Z.tar.xz */
  path: string;
  /** Size announced by the index, or undefined for a pinned timestamp the index no longer lists. */
  bytes?: number;
  timestamp: string;
}

const TS = /^\d{8}T\d{6}Z$/;

export function joinUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

export function indexUrl(mirror: string, variant: string): string {
  return joinUrl(mirror, `${AUTOBUILDS}/latest-stage3-amd64-${variant}.txt`);
}

export function stage3FileName(variant: string, timestamp: string): string {
  return `stage3-amd64-${variant}-${timestamp}.tar.xz`;
}

export function stage3PathFor(variant: string, timestamp: string): string {
  return `${timestamp}/${stage3FileName(variant, timestamp)}`;
}

export function stage3Urls(mirror: string, entry: Stage3Entry) {
  const tarball = joinUrl(mirror, `${AUTOBUILDS}/${entry.path}`);
  return { tarball, signature: `${tarball}.asc`, digests: `${tarball}.DIGESTS` };
}

/**
 * Reads the body of a verified index. Comment lines (# ...) and blank lines are
 * skipped; every other line must be "<path> <bytes>". Only entries for this
 * variant's stage3 tarball are returned.
 */
export function parseStage3Index(body: string, variant: string, source = 'stage3 index'): Stage3Entry[] {
  const entries: Stage3Entry[] = [];
  const wanted = new RegExp(`^(\\d{8}T\\d{6}Z)/stage3-amd64-${escapeRe(variant)}-(\\d{8}T\\d{6}Z)\\.tar\\.xz$`);
  for (const [i, raw] of body.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+)\s+(\d+)$/.exec(line);
    if (!m) {
      throw gentooError('EGENTOO_INDEX_FORMAT', `${source} line ${i + 1} is not "<path> <bytes>": '${line.slice(0, 80)}'; check the mirror URL`);
    }
    const [, path, bytes] = m as unknown as [string, string, string];
    const w = wanted.exec(path);
    if (!w || w[1] !== w[2]) continue;
    entries.push({ path, bytes: Number(bytes), timestamp: w[1]! });
  }
  if (!entries.length) {
    throw gentooError('EGENTOO_INDEX_FORMAT', `${source} lists no stage3-amd64-${variant} tarball; check gentoo.variant in the profile`);
  }
  return entries;
}

/** Picks the entry for 'latest' (newest timestamp) or a pinned timestamp. */
export function resolveStage3(entries: Stage3Entry[] | undefined, variant: string, want: string): Stage3Entry {
  if (want === 'latest') {
    if (!entries?.length) throw gentooError('EGENTOO_INDEX_FORMAT', `no stage3 index entries to resolve 'latest' from`);
    return [...entries].sort((a, b) => (a.timestamp < b.timestamp ? 1 : -1))[0]!;
  }
  if (!TS.test(want)) throw gentooError('EGENTOO_PROFILE', `gentoo.stage3 '${want}' is neither 'latest' nor a timestamp like 20260503T164604Z`);
  const listed = entries?.find((e) => e.timestamp === want);
  // A pinned build usually outlives the index entry; its size is then unknown
  // and the signature and digests alone decide.
  return listed ?? { path: stage3PathFor(variant, want), timestamp: want };
}

export interface Digests {
  sha512?: string;
  blake2b?: string;
}

/**
 * Reads a .DIGESTS body: blocks introduced by "# <ALGO> HASH", then
 * "<hex>  <file>" lines. Returns the digests for `fileName` (entries for
 * .CONTENTS.gz and others are ignored).
 */
export function parseDigests(body: string, fileName: string): Digests {
  const out: Digests = {};
  let algo: string | undefined;
  for (const raw of body.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const header = /^#\s*(\S+)\s+HASH$/i.exec(line);
    if (header) {
      algo = header[1]!.toUpperCase();
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([0-9a-fA-F]+)\s+\*?(\S+)$/.exec(line);
    if (!m || !algo) continue;
    const [, hex, file] = m as unknown as [string, string, string];
    if (file.split('/').pop() !== fileName) continue;
    const value = hex.toLowerCase();
    if (algo === 'SHA512' && value.length === 128) out.sha512 ??= value;
    if (algo === 'BLAKE2B' && value.length === 128) out.blake2b ??= value;
  }
  return out;
}

export function requireDigests(d: Digests, fileName: string): Required<Digests> {
  if (!d.sha512 || !d.blake2b) {
    const missing = [!d.sha512 && 'SHA512', !d.blake2b && 'BLAKE2B'].filter(Boolean).join(' and ');
    throw gentooError('EGENTOO_DIGESTS_FORMAT', `.DIGESTS has no ${missing} entry for ${fileName}; the release is incomplete on this mirror, try the next one`);
  }
  return { sha512: d.sha512, blake2b: d.blake2b };
}

/** True if the text is an OpenPGP clearsigned message (current .DIGESTS files are; older ones were not). */
export function isClearsigned(text: string): boolean {
  return text.trimStart().startsWith('-----BEGIN PGP SIGNED MESSAGE-----');
}

export function snapshotUrls(mirror: string, date: string) {
  const tarball = joinUrl(mirror, `snapshots/gentoo-${date}.tar.xz`);
  return { tarball, signature: `${tarball}.gpgsig` };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
