// The publish pass: one read of the image yields the compressed artifact
// (`hn-root_<version>.img.zst`), the sha256 of the raw image (the value the
// boot sidecar carries) and the sha256 of the artifact.
//
// An hn-debian image is 15 GiB apparent and ~1.2 GiB used; compressing it
// with `zstd -T0` spends most of its time on the zeros of the holes. Here the
// image is read in 4 MiB chunks; runs of data (and short runs of zeros
// between them) go through `zstd -T0` as one frame each, and long runs of
// zeros become copies of a small frame zstd made once from 4 MiB of zeros. A
// zstd file may hold any number of frames one after another (RFC 8878, 3.1),
// so a plain `zstd -d` restores the image, sparse when writing a file. The
// raw sha256 is computed in a worker thread, which hashes zero runs from its
// own buffer: the data is read once and the hash runs beside the compression.

import { once } from 'node:events';
import { open } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { HnError } from '../errors.ts';
import { entry } from '../seam/catalogue.ts';
import type { Command } from '../seam/command.ts';
import { run, startPiped } from '../seam/run.ts';
import { sha256 } from './sums.ts';

const CHUNK = 4 << 20;
/** A run of zeros at least this long ends a zstd frame; shorter runs are cheaper to compress than to split at. */
const SPLIT_AT_ZEROS = 64 << 20;

/** The file's extents (FIEMAP), so the publish pass reads only the ~8% of an image that holds data. */
export const fileExtents = entry('filefrag', (path: string): Command => ({ file: 'filefrag', args: ['-v', path], timeoutMs: 2 * 60_000 }));

/** zstd level 3 (its default; the reference is `zstd -T0 -3`), all cores, to stdout. */
export const zstdCompress = entry('zstd', (): Command => ({ file: 'zstd', args: ['-T0', '-3', '-q', '-c'], timeoutMs: 60 * 60_000 }));

export interface CompressedImage {
  image: { bytes: number; sha256: string };
  artifact: { bytes: number; sha256: string };
}

export interface CompressOptions {
  /**
   * The raw image's sha256 when it is already known for this very file (the build's sidecar, the
   * file unchanged since): the pass then only compresses. SHA-256 is one sequential stream: over
   * 15 GiB it alone takes longer than zstd takes to compress the image.
   */
  knownSha256?: string;
  /** Bytes of the image read so far, and the total. */
  progress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/** Compresses `image` into `artifactPath` (created or truncated) in one pass; see the header. */
export async function compressImage(image: string, artifactPath: string, opts: CompressOptions = {}): Promise<CompressedImage> {
  const input = await open(image, 'r');
  const output = await open(artifactPath, 'w', 0o644);
  const hasher: RawHasher = opts.knownSha256 ? knownHash(opts.knownSha256) : new ImageHasher(image);
  const artifactHash = sha256();
  let artifactBytes = 0;
  const zeroFrames = new Map<number, Buffer>();
  const emit = async (bytes: Uint8Array) => {
    artifactHash.update(bytes);
    artifactBytes += bytes.length;
    await output.write(bytes);
  };

  let frame: Frame | undefined;
  let zerosPending = 0;
  const flushZeros = async () => {
    if (!zerosPending) return;
    const whole = Math.floor(zerosPending / CHUNK);
    const rest = zerosPending % CHUNK;
    const chunkFrame = whole ? await zeroFrame(CHUNK, zeroFrames, opts.signal) : undefined;
    for (let i = 0; i < whole; i++) await emit(chunkFrame!);
    if (rest) await emit(await zeroFrame(rest, zeroFrames, opts.signal));
    zerosPending = 0;
  };

  try {
    const size = (await input.stat()).size;
    const data = await dataRegions(image, size);
    let offset = 0;
    while (offset < size) {
      if (opts.signal?.aborted) throw new HnError('EABORTED', 'publishing stopped (interrupted)');
      const length = Math.min(CHUNK, size - offset);
      if (!data.overlaps(offset, offset + length)) {
        // A hole: zeros without reading them.
        offset += length;
        opts.progress?.(offset, size);
        hasher.zeros(length);
        zerosPending += length;
        continue;
      }
      const chunk = Buffer.allocUnsafe(length);
      const { bytesRead } = await input.read(chunk, 0, chunk.length, offset);
      if (bytesRead !== chunk.length) throw new HnError('EVERIFY', `${image} shrank while it was being published (read ${offset + bytesRead} of ${size} bytes)`);
      offset += chunk.length;
      opts.progress?.(offset, size);
      if (isZero(chunk)) {
        hasher.zeros(chunk.length);
        zerosPending += chunk.length;
        continue;
      }
      hasher.data(offset - chunk.length, chunk.length);
      if (frame && zerosPending >= SPLIT_AT_ZEROS) {
        await frame.end();
        frame = undefined;
      }
      if (!frame) {
        await flushZeros();
        frame = new Frame(emit, opts.signal);
      } else {
        for (let left = zerosPending; left > 0; left -= CHUNK) await frame.write(ZERO.subarray(0, Math.min(CHUNK, left)));
        zerosPending = 0;
      }
      await frame.write(chunk);
    }
    if (frame) await frame.end();
    frame = undefined;
    await flushZeros();
    await output.sync();
    return { image: { bytes: size, sha256: await hasher.digest() }, artifact: { bytes: artifactBytes, sha256: artifactHash.hex() } };
  } finally {
    await frame?.abort();
    await hasher.close();
    await input.close();
    await output.close();
  }
}

const ZERO = Buffer.alloc(CHUNK);

/** Byte ranges of a file that may hold data; asked in increasing order. */
interface DataRegions {
  overlaps(start: number, end: number): boolean;
}

const EVERYTHING: DataRegions = { overlaps: () => true };

/**
 * The file's data regions from its extent map. Where the filesystem cannot
 * tell (no FIEMAP: tmpfs, some FUSE filesystems), every byte is read and
 * zeros are found by comparison instead: slower, same result.
 */
async function dataRegions(path: string, size: number): Promise<DataRegions> {
  const out = await run(fileExtents(path), { capture: true }).catch(() => undefined);
  const block = Number(/blocks? of (\d+) bytes/.exec(out?.stdout ?? '')?.[1]);
  if (!out || !block) return EVERYTHING;
  const ranges: [number, number][] = [];
  for (const line of out.stdout.split('\n')) {
    const m = /^\s*\d+:\s+(\d+)\.\.\s*(\d+):/.exec(line);
    if (m) ranges.push([Number(m[1]) * block, Math.min(size, (Number(m[2]) + 1) * block)]);
  }
  if (!ranges.length && !/ 0 extents found/.test(out.stdout)) return EVERYTHING;
  ranges.sort((a, b) => a[0] - b[0]);
  let i = 0;
  return {
    overlaps(start, end) {
      while (i < ranges.length && ranges[i]![1] <= start) i++;
      return i < ranges.length && ranges[i]![0] < end;
    },
  };
}

function isZero(chunk: Buffer): boolean {
  return chunk.equals(chunk.length === CHUNK ? ZERO : ZERO.subarray(0, chunk.length));
}

/** One zstd frame: data written to a zstd process, its output emitted in order. */
class Frame {
  private readonly zstd;
  private readonly drained: Promise<void>;

  constructor(emit: (bytes: Uint8Array) => Promise<void>, signal?: AbortSignal) {
    this.zstd = startPiped(zstdCompress(), { signal });
    const stdout = this.zstd.stdout;
    this.drained = (async () => {
      for await (const piece of stdout) await emit(piece as Buffer);
    })();
    this.drained.catch(() => undefined);
  }

  async write(bytes: Buffer) {
    if (!this.zstd.stdin.write(bytes)) await Promise.race([once(this.zstd.stdin, 'drain'), this.zstd.finished]);
  }

  async end() {
    this.zstd.stdin.end();
    await Promise.all([this.drained, this.zstd.finished]);
  }

  async abort() {
    this.zstd.stdin.destroy();
    this.zstd.stdout.destroy();
    await this.zstd.finished.catch(() => undefined);
  }
}

/** The zstd frame of `length` zero bytes, made once per length by zstd itself. */
async function zeroFrame(length: number, made: Map<number, Buffer>, signal?: AbortSignal): Promise<Buffer> {
  const known = made.get(length);
  if (known) return known;
  const pieces: Buffer[] = [];
  const frame = new Frame(async (bytes) => void pieces.push(Buffer.from(bytes)), signal);
  await frame.write(ZERO.subarray(0, length));
  await frame.end();
  const bytes = Buffer.concat(pieces);
  made.set(length, bytes);
  return bytes;
}

// The hashing worker: plain JavaScript, so it needs no loader. SHA-256 is one
// sequential stream and the holes come first in it, so the worker runs far
// behind the reader; rather than holding the reader's data chunks until it
// gets there, it reads them again itself (from the page cache the reader just
// filled) when it reaches them. Zero runs are hashed from its own buffer.
const HASH_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const hash = createHash('sha256');
const zero = Buffer.alloc(${CHUNK});
const buffer = Buffer.alloc(${CHUNK});
const fd = openSync(workerData.path, 'r');
parentPort.on('message', (m) => {
  try {
    if (m.zeros) {
      for (let left = m.zeros; left > 0; left -= zero.length) hash.update(left >= zero.length ? zero : zero.subarray(0, left));
    } else if (m.length) {
      const got = readSync(fd, buffer, 0, m.length, m.offset);
      if (got !== m.length) throw new Error('short read at ' + m.offset + ': the image changed while it was read');
      hash.update(buffer.subarray(0, m.length));
    } else if (m.end) {
      closeSync(fd);
      parentPort.postMessage({ digest: hash.digest('hex') });
    }
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message || e) });
  }
});
`;

interface RawHasher {
  zeros(length: number): void;
  data(offset: number, length: number): void;
  digest(): Promise<string>;
  close(): Promise<void>;
}

function knownHash(sha256: string): RawHasher {
  const nothing = () => undefined;
  return { zeros: nothing, data: nothing, close: async () => undefined, digest: async () => sha256 };
}

/** sha256 of the raw image in a worker thread that follows the reader at its own pace. */
class ImageHasher implements RawHasher {
  private readonly worker: Worker;
  private failed: Error | undefined;
  private digested: ((hex: string) => void) | undefined;
  private rejected: ((e: Error) => void) | undefined;

  constructor(path: string) {
    this.worker = new Worker(HASH_WORKER, { eval: true, workerData: { path } });
    this.worker.on('message', (m: { digest?: string; error?: string }) => {
      if (m.error !== undefined) this.fail(new HnError('EVERIFY', `hashing the image: ${m.error}`));
      if (m.digest !== undefined) this.digested?.(m.digest);
    });
    this.worker.on('error', (e) => this.fail(e));
  }

  private fail(e: Error) {
    this.failed ??= e;
    this.rejected?.(e);
  }

  zeros(length: number) {
    if (this.failed) throw this.failed;
    this.worker.postMessage({ zeros: length });
  }

  data(offset: number, length: number) {
    if (this.failed) throw this.failed;
    this.worker.postMessage({ offset, length });
  }

  digest(): Promise<string> {
    return new Promise((resolve, reject) => {
      if (this.failed) return reject(this.failed);
      this.digested = resolve;
      this.rejected = reject;
      this.worker.postMessage({ end: true });
    });
  }

  async close() {
    await this.worker.terminate();
  }
}
