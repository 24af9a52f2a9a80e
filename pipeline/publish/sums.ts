// SHA256SUMS as systemd-sysupdate (url-file sources, via systemd-pull) and
// mkosi read and write it: one `<64 lowercase hex> *<file>` line per file
// (`*` is sha256sum's binary-mode marker), sorted by file name, each line
// ending in a newline. Every retained version of every published file is
// listed; SHA256SUMS.gpg is a detached signature over these exact bytes.
//
// The parser is strict: it reads only what formatSums writes, so a
// hand-edited or truncated file is refused with its line number rather than
// half-read. File names are plain names in the publishing directory: no
// slash, no backslash (sha256sum would escape it), no control characters.

import { createHash, type Hash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { HnError } from '../errors.ts';

/** File name -> lowercase hex sha256. Iteration order is not significant: formatSums sorts. */
export type Sums = ReadonlyMap<string, string>;

const HEX64 = /^[0-9a-f]{64}$/;
const LINE = /^([0-9a-f]{64}) \*(.+)$/;

/** Why a name cannot be a SHA256SUMS entry, or undefined if it can. */
function badName(file: string): string | undefined {
  if (file === '' || file === '.' || file === '..') return 'an empty name, "." or ".."';
  if (file.includes('/')) return 'a slash (entries are names in the publishing directory)';
  if (file.includes('\\')) return 'a backslash (sha256sum would escape the line)';
  if (/[\u0000-\u001f\u007f]/.test(file)) return 'a control character (newline, carriage return, tab...)';
  if (file !== file.trim()) return 'leading or trailing white space';
  return undefined;
}

/** Byte-wise order of UTF-16 code units: the same in every locale, like `LC_ALL=C sort` for ASCII names. */
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function formatSums(sums: Sums): string {
  return [...sums.keys()]
    .sort(byName)
    .map((file) => {
      const hex = sums.get(file)!;
      const why = badName(file);
      if (why) throw new HnError('ESUMS_FORMAT', `cannot list '${JSON.stringify(file)}' in SHA256SUMS: the name contains ${why}`);
      if (!HEX64.test(hex)) throw new HnError('ESUMS_FORMAT', `cannot list ${file} in SHA256SUMS: '${hex}' is not 64 lowercase hex digits`);
      return `${hex} *${file}\n`;
    })
    .join('');
}

/** `source` names the file in error messages (e.g. the URL or path it came from). */
export function parseSums(text: string, source = 'SHA256SUMS'): Map<string, string> {
  const sums = new Map<string, string>();
  if (text === '') return sums;
  if (!text.endsWith('\n')) {
    throw new HnError('ESUMS_FORMAT', `${source}: the last line has no trailing newline (truncated file?)`);
  }
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, i) => {
    const where = `${source} line ${i + 1}`;
    const m = LINE.exec(line);
    if (!m) {
      throw new HnError('ESUMS_FORMAT', `${where} is not '<64 lowercase hex> *<file>': ${JSON.stringify(line.slice(0, 120))}`);
    }
    const [, hex, file] = m as unknown as [string, string, string];
    const why = badName(file);
    if (why) throw new HnError('ESUMS_FORMAT', `${where}: the file name contains ${why}`);
    if (sums.has(file)) throw new HnError('ESUMS_FORMAT', `${where} lists ${file} a second time`);
    sums.set(file, hex);
  });
  return sums;
}

/**
 * A copy of `sums` listing `file` with `sha256`. Adding the same digest again is
 * a no-op (a rerun of a publish); a different digest for a listed name is
 * refused, because a published version is immutable and nodes may already
 * hold it, unless `replace` says the old file is being replaced on purpose.
 */
export function withEntry(sums: Sums, file: string, sha256: string, opts: { replace?: boolean } = {}): Map<string, string> {
  const why = badName(file);
  if (why) throw new HnError('ESUMS_FORMAT', `cannot list ${JSON.stringify(file)} in SHA256SUMS: the name contains ${why}`);
  if (!HEX64.test(sha256)) throw new HnError('ESUMS_FORMAT', `cannot list ${file}: '${sha256}' is not 64 lowercase hex digits`);
  const old = sums.get(file);
  if (old !== undefined && old !== sha256 && !opts.replace) {
    throw new HnError('ESUMS_CONFLICT', `SHA256SUMS already lists ${file} with sha256 ${old}, not ${sha256}; published files are immutable: publish under a new version`);
  }
  return new Map(sums).set(file, sha256);
}

/** A copy of `sums` without `files`; names not listed are ignored (pruning is idempotent). */
export function withoutEntries(sums: Sums, files: Iterable<string>): Map<string, string> {
  const out = new Map(sums);
  for (const f of files) out.delete(f);
  return out;
}

// Hashing. Node's crypto (OpenSSL) uses the CPU's SHA extensions where it
// has them; what costs beyond the hash itself is per-chunk overhead, so
// files are read in large chunks into one reused buffer.

/** An incremental sha256 to feed the same chunks a compressor gets: update(chunk) ... hex(). */
export interface Sha256 {
  update(chunk: Uint8Array): void;
  /** Lowercase hex; ends the hash (a second call throws). */
  hex(): string;
  /** Bytes fed so far. */
  readonly bytes: number;
}

export function sha256(): Sha256 {
  const h: Hash = createHash('sha256');
  let bytes = 0;
  return {
    update(chunk) {
      h.update(chunk);
      bytes += chunk.byteLength;
    },
    hex: () => h.digest('hex'),
    get bytes() {
      return bytes;
    },
  };
}

/**
 * A pass-through stream that hashes what flows through it, for
 * `pipeline(createReadStream(img), hashing, compressor, out)`. `digest`
 * resolves with the lowercase hex sha256 once the input has ended.
 */
export class Sha256Transform extends Transform {
  readonly digest: Promise<string>;
  #hash = sha256();
  #resolve!: (hex: string) => void;

  constructor() {
    super();
    this.digest = new Promise((resolve) => (this.#resolve = resolve));
  }

  get bytes(): number {
    return this.#hash.bytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#resolve(this.#hash.hex());
    callback();
  }
}

const CHUNK = 4 << 20;

/**
 * sha256 of a file (lowercase hex), read in 4 MiB chunks into one reused
 * buffer. (To hash and compress in one pass, use Sha256Transform or sha256()
 * instead: a reused buffer must not be handed to a compressor.)
 */
export async function sha256File(path: string): Promise<string> {
  const h = sha256();
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.hex();
}
