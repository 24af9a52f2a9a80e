// The checksum sidecar published beside every image and checked by the
// initramfs (boot/hn-boot.sh, hn_verify) before hn-root-new.img is promoted.
//
//   format=hnforge-sidecar-1
//   size=<bytes>              checked first: a truncated copy fails instantly
//   sha256=<64 lowercase hex>
//   version=<free text>       informational
//
// One key=value per line; unknown keys are ignored by readers, so fields can
// be added without a format change. The node's updater writes
// hn-root-new.img.sha256 first and renames hn-root-new.img.part to
// hn-root-new.img last, so an image file under the final name always has its sidecar.

import { stat, writeFile } from 'node:fs/promises';
import { HnError } from '../errors.ts';
import { entry } from '../seam/catalogue.ts';
import type { Command } from '../seam/command.ts';
import { run } from '../seam/run.ts';

import { SIDECAR } from './contract.ts';

const SIDECAR_FORMAT = SIDECAR.format;

export interface Sidecar {
  size: number;
  sha256: string;
  version?: string;
}

export function formatSidecar(s: Sidecar): string {
  if (!/^[0-9a-f]{64}$/.test(s.sha256)) throw new Error(`not a sha256: ${s.sha256}`);
  if (s.version !== undefined && /[\n=]/.test(s.version)) throw new Error('sidecar version must be one line without "="');
  return [`format=${SIDECAR_FORMAT}`, `size=${s.size}`, `sha256=${s.sha256}`, ...(s.version ? [`version=${s.version}`] : []), ''].join('\n');
}

export function parseSidecar(text: string): Sidecar {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1));
  }
  if (kv.get('format') !== SIDECAR_FORMAT) throw new HnError('ESIDECAR', `unknown sidecar format '${kv.get('format') ?? ''}'`);
  const size = Number(kv.get('size'));
  const sha256 = kv.get('sha256') ?? '';
  if (!Number.isSafeInteger(size) || size < 0) throw new HnError('ESIDECAR', 'sidecar has no valid size');
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new HnError('ESIDECAR', 'sidecar has no valid sha256');
  const version = kv.get('version');
  return { size, sha256, ...(version !== undefined ? { version } : {}) };
}

/**
 * sha256 of a (sparse, 15 GiB) image by `openssl dgst`: 14 s here, where a
 * Node stream took 68 s and a read loop 27 s (the zeros of the holes are
 * hashed too, so the apparent size is what costs).
 */
export const sha256Command = entry('openssl', (path: string): Command => ({ file: 'openssl', args: ['dgst', '-sha256', '-r', path], timeoutMs: 15 * 60_000 }));

export async function sha256File(path: string): Promise<string> {
  const { stdout } = await run(sha256Command(path), { capture: true });
  const hex = stdout.trim().split(/\s+/)[0] ?? '';
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new HnError('ESIDECAR', `openssl printed no sha256 for ${path}`);
  return hex;
}

export async function computeSidecar(image: string, version?: string): Promise<Sidecar> {
  const { size } = await stat(image);
  return { size, sha256: await sha256File(image), ...(version ? { version } : {}) };
}

export async function writeSidecar(image: string, out = `${image}.sha256`, version?: string): Promise<Sidecar> {
  const s = await computeSidecar(image, version);
  await writeFile(out, formatSidecar(s));
  return s;
}
