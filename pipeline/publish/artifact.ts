// The publish pass: one read of the image yields the compressed artifact
// (`hn-root_<version>.img.zst`), the sha256 of the raw image (the value the
// boot sidecar carries) and the sha256 of the artifact.
//
// An hn-debian image is 15 GiB apparent and ~1.2 GiB used; compressing it
// with `zstd -T0` spends most of its time on the zeros of the holes. Here the
// image is read in 4 MiB chunks; runs of data (and short runs of zeros
// between them) go through a zstd process as one frame each, which writes it
// straight into the artifact, and long runs of zeros become copies of a small
// frame zstd made once from 4 MiB of zeros. A
// zstd file may hold any number of frames one after another (RFC 8878, 3.1),
// so a plain `zstd -d` restores the image, sparse when writing a file.
//
// The raw sha256 is one sequential stream over all 15 GiB (~9.7 s here even
// with SHA instructions): longer than the compression. It runs in a worker
// thread at its own pace from the start, guided by the same extent map (holes
// hashed from a buffer of zeros, data read from the page cache the reader
// fills), and zstd then keeps to one thread so that the hash has a core.

import { once } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { HnError } from '../errors.ts';
import { entry } from '../seam/catalogue.ts';
import type { Command } from '../seam/command.ts';
import { run, startPiped } from '../seam/run.ts';
import { sha256 } from './sums.ts';

const CHUNK = 4 << 20;
/** A run of zeros at least this long ends a zstd frame; shorter runs are cheaper to compress than to split at. */
const SPLIT_AT_ZEROS = 64 << 20;
/**
 * A frame shorter than this is compressed on one core: zstd's multithreaded set-up costs more
 * than a second core saves on it. hn-debian has 16 frames, two above this (216 and 1168 MiB);
 * its pass took 6.0-6.2 s with every frame on all cores, 5.1 s so.
 */
const ONE_CORE_BELOW = 128 << 20;

/** The file's extents (FIEMAP), so the publish pass reads only the ~8% of an image that holds data. */
export const fileExtents = entry('filefrag', (path: string): Command => ({ file: 'filefrag', args: ['-v', path], timeoutMs: 2 * 60_000 }));

/**
 * zstd level 3 (its default; the reference is `zstd -T0 -3`) to stdout, on all cores or
 * on one: --single-thread, not -T1, which still sets up the multithreaded machinery (a 4 MiB
 * frame takes 46 ms with -T1 or -T0, 24 ms with --single-thread).
 */
export const zstdCompress = entry('zstd', (cores: 'all' | 'one' = 'all'): Command => ({
  file: 'zstd', args: [cores === 'all' ? '-T0' : '--single-thread', '-3', '-q', '-c'], timeoutMs: 60 * 60_000,
}));

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
  // zstd writes its frames straight into this file (its stdout is this descriptor), and the
  // zero frames are written here between them: both advance the one shared file offset, and
  // never at the same time (a frame's zstd has exited before anything else is written).
  const output = await open(artifactPath, 'w', 0o644);
  let hasher: RawHasher | undefined;
  // While the worker hashes, zstd keeps to one thread: the hash is the longer task and needs a
  // core of its own (hn-debian on 2 cores: 10.9 s for the pass, 10.9 to 11.5 s with zstd -T0).
  const zstdCores = opts.knownSha256 ? 'all' : 'one';
  const zeroFrames = new Map<number, Buffer>();
  const emit = async (bytes: Uint8Array) => void (await output.write(bytes));
  // Two read buffers in turn: one is read into while zstd still takes the other from the pipe.
  const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  const handedOver: (Promise<void> | undefined)[] = [undefined, undefined];
  let turn = 0;
  const writeback = new Writeback(output);
  const artifactHash = new ArtifactHasher(await open(artifactPath, 'r'));

  let frame: Frame | undefined;
  let zerosPending = 0;
  const flushZeros = async () => {
    if (!zerosPending) return;
    const whole = Math.floor(zerosPending / CHUNK);
    const rest = zerosPending % CHUNK;
    // A hole of 14 GiB is 3,500 copies of one small frame: written a few thousand at a time.
    const chunkFrame = whole ? await zeroFrame(CHUNK, zeroFrames, opts.signal) : undefined;
    for (let left = whole; left > 0; left -= ZERO_FRAMES_PER_WRITE) await emit(Buffer.concat(Array(Math.min(left, ZERO_FRAMES_PER_WRITE)).fill(chunkFrame)));
    if (rest) await emit(await zeroFrame(rest, zeroFrames, opts.signal));
    zerosPending = 0;
  };

  try {
    const size = (await input.stat()).size;
    const ranges = await dataRanges(image, size);
    hasher = opts.knownSha256 ? knownHash(opts.knownSha256) : new ImageHasher(image, size, ranges);
    const data = regionCursor(ranges);
    let offset = 0;
    while (offset < size) {
      if (opts.signal?.aborted) throw new HnError('EABORTED', 'publishing stopped (interrupted)');
      const length = Math.min(CHUNK, size - offset);
      if (!data.overlaps(offset, offset + length)) {
        // A hole: zeros without reading them.
        offset += length;
        opts.progress?.(offset, size);
        hasher.check();
        zerosPending += length;
        continue;
      }
      turn ^= 1;
      await handedOver[turn];
      const chunk = buffers[turn]!.subarray(0, length);
      const { bytesRead } = await input.read(chunk, 0, chunk.length, offset);
      if (bytesRead !== chunk.length) throw new HnError('EVERIFY', `${image} shrank while it was being published (read ${offset + bytesRead} of ${size} bytes)`);
      offset += chunk.length;
      opts.progress?.(offset, size);
      if (isZero(chunk)) {
        zerosPending += chunk.length;
        continue;
      }
      if (frame && zerosPending >= SPLIT_AT_ZEROS) {
        await frame.end();
        frame = undefined;
        writeback.kick();
        artifactHash.catchUp((await output.stat()).size);
      }
      if (!frame) {
        await flushZeros();
        const planned = frameLength(ranges, offset - chunk.length);
        frame = new Frame(output.fd, planned !== undefined && planned < ONE_CORE_BELOW ? 'one' : zstdCores, opts.signal);
      } else {
        for (let left = zerosPending; left > 0; left -= CHUNK) await frame.write(ZERO.subarray(0, Math.min(CHUNK, left))).written;
        zerosPending = 0;
      }
      const sent = frame.write(chunk);
      handedOver[turn] = sent.written;
      await sent.accepted;
    }
    if (frame) await frame.end();
    frame = undefined;
    await flushZeros();
    await writeback.settle();
    const artifactBytes = (await output.stat()).size;
    return { image: { bytes: size, sha256: await hasher.digest() }, artifact: { bytes: artifactBytes, sha256: await artifactHash.digest(artifactBytes) } };
  } finally {
    await frame?.abort();
    await writeback.settle();
    await artifactHash.close();
    await hasher?.close();
    await input.close();
    await output.close();
  }
}

const ZERO = Buffer.alloc(CHUNK);
const ZERO_FRAMES_PER_WRITE = 4096;

/** Sorted [start, end) byte ranges that may hold data; undefined: unknown, read everything. */
type DataRanges = [number, number][] | undefined;

/** Byte ranges of a file that may hold data; asked in increasing order. */
interface DataRegions {
  overlaps(start: number, end: number): boolean;
}

/**
 * The length of the frame starting at `start` as the extent map tells it: up to the end of the
 * data before the next gap of SPLIT_AT_ZEROS or more (the pass may end it sooner, where written
 * blocks read as zeros); undefined without an extent map.
 */
function frameLength(ranges: DataRanges, start: number): number | undefined {
  if (!ranges) return undefined;
  let end = start;
  for (const [a, b] of ranges) {
    if (b <= start) continue;
    if (a - end >= SPLIT_AT_ZEROS && end > start) break;
    end = Math.max(end, b);
  }
  return end - start;
}

function regionCursor(ranges: DataRanges): DataRegions {
  if (!ranges) return { overlaps: () => true };
  let i = 0;
  return {
    overlaps(start, end) {
      while (i < ranges.length && ranges[i]![1] <= start) i++;
      return i < ranges.length && ranges[i]![0] < end;
    },
  };
}

/**
 * The file's data ranges from its extent map. Where the filesystem cannot
 * tell (no FIEMAP: tmpfs, some FUSE filesystems), every byte is read and
 * zeros are found by comparison instead: slower, same result.
 */
async function dataRanges(path: string, size: number): Promise<DataRanges> {
  const out = await run(fileExtents(path), { capture: true }).catch(() => undefined);
  const block = Number(/blocks? of (\d+) bytes/.exec(out?.stdout ?? '')?.[1]);
  if (!out || !block) return undefined;
  const ranges: [number, number][] = [];
  for (const line of out.stdout.split('\n')) {
    const m = /^\s*\d+:\s+(\d+)\.\.\s*(\d+):/.exec(line);
    if (m) ranges.push([Number(m[1]) * block, Math.min(size, (Number(m[2]) + 1) * block)]);
  }
  if (!ranges.length && !/ 0 extents found/.test(out.stdout)) return undefined;
  return ranges.sort((a, b) => a[0] - b[0]);
}

function isZero(chunk: Buffer): boolean {
  return chunk.equals(chunk.length === CHUNK ? ZERO : ZERO.subarray(0, chunk.length));
}

/** One zstd frame: data written to a zstd process that writes the frame to `outputFd`. */
class Frame {
  private readonly zstd;

  constructor(outputFd: number, cores: 'all' | 'one', signal?: AbortSignal) {
    this.zstd = startPiped(zstdCompress(cores), { signal, stdoutFd: outputFd });
  }

  /** `accepted`: the pipe takes more; `written`: `bytes` left our hands (its buffer may be reused). */
  write(bytes: Buffer): { accepted: Promise<unknown>; written: Promise<void> } {
    // A broken pipe says only EPIPE: the error worth telling is how zstd ended (killed, exit code).
    const failed = (): Promise<never> =>
      this.zstd.finished.then(() => {
        throw new HnError('ECOMMAND', 'zstd stopped reading its input before the end of the frame');
      });
    let ok = true;
    const written = new Promise<void>((resolve, reject) => {
      ok = this.zstd.stdin.write(bytes, (e) => (e ? failed().catch(reject) : resolve()));
    });
    const accepted = ok ? Promise.resolve() : Promise.race([once(this.zstd.stdin, 'drain'), this.zstd.finished]).catch(failed);
    // The caller may await only one of the two (the other must not end the process as an
    // unhandled rejection): a failure reaches it either way.
    accepted.catch(() => undefined);
    written.catch(() => undefined);
    return { accepted, written };
  }

  async end() {
    this.zstd.stdin.end();
    await this.zstd.finished;
  }

  async abort() {
    this.zstd.stdin.destroy();
    await this.zstd.finished.catch(() => undefined);
  }
}

/**
 * The artifact's sha256, read back (from the page cache) behind the writers while the pass goes
 * on: what is before the end of the last finished frame is final. Saves a read of the whole
 * artifact after the pass.
 */
class ArtifactHasher {
  private readonly hash = sha256();
  private readonly buffer = Buffer.allocUnsafe(1 << 20);
  private hashed = 0;
  private work: Promise<void> = Promise.resolve();

  constructor(private readonly file: FileHandle) {}

  /** Hashes up to `end` in the background. */
  catchUp(end: number) {
    this.work = this.work.then(() => this.readUpTo(end));
    this.work.catch(() => undefined); // seen by digest()
  }

  private async readUpTo(end: number) {
    while (this.hashed < end) {
      const { bytesRead } = await this.file.read(this.buffer, 0, Math.min(this.buffer.length, end - this.hashed), this.hashed);
      if (!bytesRead) throw new HnError('EVERIFY', `the artifact ends at ${this.hashed} bytes, before ${end}: something else truncated it`);
      this.hash.update(this.buffer.subarray(0, bytesRead));
      this.hashed += bytesRead;
    }
  }

  async digest(end: number): Promise<string> {
    this.catchUp(end);
    await this.work;
    return this.hash.hex();
  }

  async close() {
    await this.work.catch(() => undefined);
    await this.file.close();
  }
}

/**
 * Writes the artifact back to disk while the pass goes on (a datasync after each frame, one at
 * a time), so that the store's final fsync has little left to write: ~330 MiB of artifact
 * otherwise wait for it (seen: 0.4 to 2 s).
 */
class Writeback {
  private running: Promise<void> | undefined;

  constructor(private readonly file: FileHandle) {}

  kick() {
    // A failure here shows again in the store's own fsync, which is the one that counts.
    this.running ??= this.file.datasync().then(
      () => void (this.running = undefined),
      () => void (this.running = undefined),
    );
  }

  async settle() {
    await this.running;
  }
}

/** The zstd frame of `length` zero bytes, made once per length by zstd itself. */
async function zeroFrame(length: number, made: Map<number, Buffer>, signal?: AbortSignal): Promise<Buffer> {
  const known = made.get(length);
  if (known) return known;
  const zstd = startPiped(zstdCompress(), { signal });
  zstd.stdin.end(ZERO.subarray(0, length));
  const pieces: Buffer[] = [];
  for await (const piece of zstd.stdout) pieces.push(piece as Buffer);
  await zstd.finished;
  const bytes = Buffer.concat(pieces);
  made.set(length, bytes);
  return bytes;
}

// The hashing worker: plain JavaScript, so it needs no loader. It walks the
// image in chunks by itself (holes from its own buffer of zeros, data read
// from the file) and posts the digest, or the error, once at the end.
const HASH_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const { path, size, ranges } = workerData;
const hash = createHash('sha256');
const zero = Buffer.alloc(${CHUNK});
const buffer = Buffer.alloc(${CHUNK});
const fd = openSync(path, 'r');
try {
  let i = 0;
  for (let offset = 0; offset < size; offset += zero.length) {
    const length = Math.min(zero.length, size - offset);
    while (ranges && i < ranges.length && ranges[i][1] <= offset) i++;
    if (ranges && !(i < ranges.length && ranges[i][0] < offset + length)) {
      hash.update(zero.subarray(0, length));
      continue;
    }
    const got = readSync(fd, buffer, 0, length, offset);
    if (got !== length) throw new Error('short read at ' + offset + ': the image changed while it was read');
    hash.update(buffer.subarray(0, length));
  }
  parentPort.postMessage({ digest: hash.digest('hex') });
} catch (e) {
  parentPort.postMessage({ error: String((e && e.message) || e) });
} finally {
  closeSync(fd);
}
`;

interface RawHasher {
  /** Throws the hasher's failure, if it failed already. */
  check(): void;
  digest(): Promise<string>;
  close(): Promise<void>;
}

function knownHash(sha256: string): RawHasher {
  return { check: () => undefined, close: async () => undefined, digest: async () => sha256 };
}

/** sha256 of the raw image in a worker thread that walks the image at its own pace. */
class ImageHasher implements RawHasher {
  private readonly worker: Worker;
  private readonly result: Promise<string>;
  private failed: Error | undefined;

  constructor(path: string, size: number, ranges: DataRanges) {
    this.worker = new Worker(HASH_WORKER, { eval: true, workerData: { path, size, ranges } });
    this.result = new Promise<string>((resolve, reject) => {
      const fail = (e: Error) => reject((this.failed ??= e));
      this.worker.on('message', (m: { digest?: string; error?: string }) => {
        if (m.error !== undefined) fail(new HnError('EVERIFY', `hashing the image: ${m.error}`));
        if (m.digest !== undefined) resolve(m.digest);
      });
      this.worker.on('error', fail);
    });
    this.result.catch(() => undefined); // seen by check() and digest()
  }

  check() {
    if (this.failed) throw this.failed;
  }

  digest(): Promise<string> {
    return this.result;
  }

  async close() {
    await this.worker.terminate();
  }
}
