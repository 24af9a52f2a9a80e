// Thick Manifests for portage-overlay/ (layout.conf: thin-manifests = false):
// one line per file, "TYPE NAME SIZE BLAKE2B <hex> SHA512 <hex>", with types
// AUX (files/), EBUILD, MISC (metadata.xml and the like) and DIST (distfiles,
// which live elsewhere and are added from a local copy).
//
//   npx tsx pipeline/gentoo/manifest.ts <package dir> [--dist <distfile>...]
// rewrites <package dir>/Manifest, keeping DIST entries already there.

import { createHash } from 'node:crypto';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';

export type ManifestType = 'AUX' | 'EBUILD' | 'MISC' | 'DIST';

export interface ManifestEntry {
  type: ManifestType;
  name: string;
  size: number;
  hashes: Record<string, string>;
}

export const MANIFEST_HASHES = ['BLAKE2B', 'SHA512'] as const;

export function hashBuffer(data: Buffer): Record<string, string> {
  return {
    BLAKE2B: createHash('blake2b512').update(data).digest('hex'),
    SHA512: createHash('sha512').update(data).digest('hex'),
  };
}

export async function entryFor(type: ManifestType, name: string, path: string): Promise<ManifestEntry> {
  const data = await readFile(path);
  return { type, name, size: data.length, hashes: hashBuffer(data) };
}

export function formatEntry(e: ManifestEntry): string {
  return [e.type, e.name, String(e.size), ...MANIFEST_HASHES.flatMap((h) => [h, e.hashes[h] ?? ''])].join(' ');
}

export function parseManifest(text: string): ManifestEntry[] {
  const out: ManifestEntry[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (!line.trim()) continue;
    const f = line.trim().split(/\s+/);
    const [type, name, size, ...rest] = f;
    if (!type || !['AUX', 'EBUILD', 'MISC', 'DIST'].includes(type) || !name || !/^\d+$/.test(size ?? '') || rest.length % 2) {
      throw new Error(`Manifest line ${i + 1} is malformed: ${line}`);
    }
    const hashes: Record<string, string> = {};
    for (let j = 0; j < rest.length; j += 2) hashes[rest[j]!] = rest[j + 1]!;
    out.push({ type: type as ManifestType, name, size: Number(size), hashes });
  }
  return out;
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (e.isFile()) out.push(p);
  }
  return out.sort();
}

/** Entries a thick Manifest of `pkgDir` must have for the files in it (everything but DIST). */
export async function localEntries(pkgDir: string): Promise<ManifestEntry[]> {
  const entries: ManifestEntry[] = [];
  for (const f of await walk(join(pkgDir, 'files'))) entries.push(await entryFor('AUX', relative(join(pkgDir, 'files'), f), f));
  for (const name of (await readdir(pkgDir)).sort()) {
    if (name === 'Manifest' || name === 'files') continue;
    const p = join(pkgDir, name);
    if (!(await stat(p)).isFile()) continue;
    entries.push(await entryFor(name.endsWith('.ebuild') ? 'EBUILD' : 'MISC', name, p));
  }
  return entries;
}

const ORDER: ManifestType[] = ['AUX', 'DIST', 'EBUILD', 'MISC'];

export async function buildManifest(pkgDir: string, distfiles: string[] = []): Promise<string> {
  const existing = await readFile(join(pkgDir, 'Manifest'), 'utf8').then(parseManifest, () => []);
  const dist = new Map(existing.filter((e) => e.type === 'DIST').map((e) => [e.name, e]));
  for (const f of distfiles) dist.set(basename(f), await entryFor('DIST', basename(f), f));
  const all = [...(await localEntries(pkgDir)), ...dist.values()];
  all.sort((a, b) => ORDER.indexOf(a.type) - ORDER.indexOf(b.type) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return all.map(formatEntry).join('\n') + '\n';
}

export async function writeManifest(pkgDir: string, distfiles: string[] = []): Promise<void> {
  await writeFile(join(pkgDir, 'Manifest'), await buildManifest(pkgDir, distfiles));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [pkgDir, ...rest] = process.argv.slice(2);
  if (!pkgDir) {
    console.error('usage: manifest.ts <package dir> [--dist <distfile>...]');
    process.exit(2);
  }
  const dist = rest[0] === '--dist' ? rest.slice(1) : [];
  await writeManifest(pkgDir, dist);
  console.log(`wrote ${join(pkgDir, 'Manifest')}`);
}
