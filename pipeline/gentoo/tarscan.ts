// Reads every header of a tar file (tar-stream) before anything is extracted
// and refuses archives that could write outside the target directory:
// absolute member names, `..` components, hard links to such names, relative
// symlinks that climb above the root, and members stored below a symlink the
// same archive created. Absolute symlink targets are allowed: they resolve
// inside the image once it runs (a stage3 has many, e.g. into /usr/share);
// host-side code that writes into the image goes through seam/image-fs.ts instead.

import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tarStream from 'tar-stream';
import { gentooError } from './errors.ts';

export interface TarScanResult {
  entries: number;
  files: number;
  directories: number;
  symlinks: number;
  hardlinks: number;
  devices: number;
}

export interface TarProblem {
  name: string;
  why: string;
}

const ALLOWED_TYPES = new Set(['file', 'contiguous-file', 'directory', 'symlink', 'link', 'character-device', 'block-device', 'fifo']);

/** Normalises a member name as tar would see it after `--strip-components`; undefined if stripped away. */
function memberPath(name: string, strip: number): string | undefined {
  let n = name.replace(/^(\.\/)+/, '');
  if (strip > 0) {
    const parts = n.split('/').filter((p, i, a) => p !== '' || i === a.length - 1);
    if (parts.length <= strip) return undefined;
    n = parts.slice(strip).join('/');
  }
  return n.replace(/\/+$/, '');
}

/** Pure check of one header; exported for unit tests. */
export function checkHeader(
  header: { name: string; type?: string | null; linkname?: string | null },
  symlinks: Set<string>,
  strip = 0,
): TarProblem | undefined {
  // Global pax records (archive-wide metadata) name no file.
  if (header.type === 'pax-global-header') return undefined;
  const raw = header.name;
  if (raw.includes('\0')) return { name: raw, why: 'NUL byte in name' };
  if (raw.startsWith('/')) return { name: raw, why: 'absolute path' };
  const name = memberPath(raw, strip);
  if (name === undefined || name === '' || name === '.') return undefined;
  const parts = name.split('/');
  if (parts.includes('..')) return { name: raw, why: "'..' component" };
  const type = header.type ?? 'file';
  if (!ALLOWED_TYPES.has(type)) return { name: raw, why: `unsupported member type ${type}` };
  for (let i = 1; i < parts.length; i++) {
    const prefix = parts.slice(0, i).join('/');
    if (symlinks.has(prefix)) return { name: raw, why: `stored below the symlink ${prefix}` };
  }
  if (type === 'link') {
    const target = header.linkname ?? '';
    if (target.startsWith('/')) return { name: raw, why: `hard link to absolute path ${target}` };
    const t = memberPath(target, strip);
    if (t === undefined || t.split('/').includes('..')) return { name: raw, why: `hard link to ${target} outside the archive` };
  }
  if (type === 'symlink') {
    const target = header.linkname ?? '';
    if (!target.startsWith('/')) {
      const resolved = posix.normalize(posix.join(posix.dirname(name), target));
      if (resolved === '..' || resolved.startsWith('../')) return { name: raw, why: `symlink to ${target} escapes the root` };
    }
    symlinks.add(name);
  }
  return undefined;
}

/** Scans a plain (uncompressed) tar file; throws EGENTOO_TAR_UNSAFE listing the first problems. */
export async function scanTar(tarFile: string, opts: { stripComponents?: number; what?: string } = {}): Promise<TarScanResult> {
  const result: TarScanResult = { entries: 0, files: 0, directories: 0, symlinks: 0, hardlinks: 0, devices: 0 };
  const problems: TarProblem[] = [];
  const symlinks = new Set<string>();
  const extract = tarStream.extract();
  extract.on('entry', (header, stream, next) => {
    result.entries++;
    switch (header.type) {
      case 'directory': result.directories++; break;
      case 'symlink': result.symlinks++; break;
      case 'link': result.hardlinks++; break;
      case 'character-device':
      case 'block-device': result.devices++; break;
      default: result.files++;
    }
    const p = checkHeader(header, symlinks, opts.stripComponents ?? 0);
    if (p && problems.length < 20) problems.push(p);
    stream.on('end', () => next());
    stream.resume();
  });
  try {
    await pipeline(createReadStream(tarFile, { highWaterMark: 1 << 20 }), extract);
  } catch (e) {
    throw gentooError('EGENTOO_TAR_UNSAFE', `${opts.what ?? tarFile} is not a readable tar archive (${(e as Error).message}); refusing to unpack it`, { cause: e });
  }
  if (problems.length) {
    throw gentooError(
      'EGENTOO_TAR_UNSAFE',
      `${opts.what ?? tarFile} has ${problems.length === 20 ? '20 or more' : problems.length} member(s) that would write outside the image (first: ${problems[0]!.name}: ${problems[0]!.why}); refusing to unpack it`,
      { details: problems.map((p) => `${p.name}: ${p.why}`) },
    );
  }
  if (result.entries === 0) throw gentooError('EGENTOO_TAR_UNSAFE', `${opts.what ?? tarFile} is an empty archive; refusing to unpack it`);
  return result;
}
