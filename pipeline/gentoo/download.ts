// HTTP(S) downloads with resume. A download goes to <dest>.part; a rerun (or
// the next mirror) continues it with a Range request; only a complete file is
// renamed to <dest>. Nothing here decides whether the content is trustworthy:
// callers verify signatures and digests before using a file.

import { createWriteStream } from 'node:fs';
import { rename, rm, stat, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HnError } from '../errors.ts';
import { gentooError } from './errors.ts';

export interface DownloadProgress {
  url: string;
  received: number;
  total?: number;
}

export interface DownloadOptions {
  /** Size the (verified) index announced; a shorter file is truncated, a longer one is refused. */
  expectedBytes?: number;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Milliseconds without progress before giving up on a connection. */
  stallMs?: number;
  /** Refuse anything larger (small files: index, signatures, digests). */
  maxBytes?: number;
}

/** Limit for the index, signature and digest files (real ones are a few KiB). */
export const SMALL_FILE_LIMIT = 1024 * 1024;

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

/** Downloads `url` to `dest`, resuming `<dest>.part` if present. Returns the final size. */
export async function download(url: string, dest: string, opts: DownloadOptions = {}): Promise<number> {
  await mkdir(dirname(dest), { recursive: true });
  const part = `${dest}.part`;
  let have = (await sizeOf(part)) ?? 0;
  if (opts.expectedBytes !== undefined && have > opts.expectedBytes) {
    await rm(part, { force: true });
    have = 0;
  }
  if (opts.expectedBytes !== undefined && have === opts.expectedBytes && have > 0) {
    await rename(part, dest);
    return have;
  }

  const controller = new AbortController();
  const onAbort = () => controller.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let stallTimer: NodeJS.Timeout | undefined;
  const stallMs = opts.stallMs ?? 60_000;
  const armStall = () => {
    if (stallTimer) clearTimeout(stallTimer);
    stallTimer = setTimeout(() => controller.abort(new Error(`no data for ${stallMs / 1000} s`)), stallMs);
    stallTimer.unref();
  };

  try {
    armStall();
    let res: Response;
    try {
      res = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {}, signal: controller.signal, redirect: 'follow' });
    } catch (e) {
      if (opts.signal?.aborted) throw new HnError('EABORTED', `download stopped: ${url}`);
      throw gentooError('EGENTOO_DOWNLOAD', `cannot reach ${url}: ${errText(e)}; check the network or the mirror list`, { cause: e });
    }

    if (res.status === 404 || res.status === 410) {
      await res.body?.cancel();
      throw gentooError('EGENTOO_MISSING_FILE', `${url} does not exist on the mirror (HTTP ${res.status}); the release may have been pruned, pin a newer stage3 or try another mirror`);
    }
    if (res.status === 416 && have > 0) {
      // The part file is already complete (or the server's file shrank): start over once.
      await res.body?.cancel();
      await rm(part, { force: true });
      return download(url, dest, opts);
    }
    let flags: 'a' | 'w' = 'w';
    let total: number | undefined;
    const length = Number(res.headers.get('content-length') ?? NaN);
    if (res.status === 206 && have > 0) {
      const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      if (!range || Number(range[1]) !== have) {
        await res.body?.cancel();
        await rm(part, { force: true });
        return download(url, dest, opts);
      }
      flags = 'a';
      total = range[2] === '*' ? (Number.isFinite(length) ? have + length : undefined) : Number(range[2]);
    } else if (res.status === 200) {
      have = 0;
      total = Number.isFinite(length) ? length : undefined;
    } else {
      await res.body?.cancel();
      throw gentooError('EGENTOO_DOWNLOAD', `${url}: HTTP ${res.status} ${res.statusText}; try again later or another mirror`);
    }
    if (total !== undefined && opts.expectedBytes !== undefined && total !== opts.expectedBytes) {
      await res.body?.cancel();
      throw gentooError(
        total < opts.expectedBytes ? 'EGENTOO_TRUNCATED' : 'EGENTOO_DOWNLOAD',
        `${url}: the mirror serves ${total} bytes but the signed index says ${opts.expectedBytes}; the mirror is stale or broken, try another one`,
      );
    }
    total ??= opts.expectedBytes;
    if (opts.maxBytes !== undefined && total !== undefined && total > opts.maxBytes) {
      await res.body?.cancel();
      throw gentooError('EGENTOO_DOWNLOAD', `${url}: ${total} bytes, more than the ${opts.maxBytes} such a file can have; the mirror is broken, try another one`);
    }

    let received = have;
    let lastReport = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        if (opts.maxBytes !== undefined && received > opts.maxBytes) {
          cb(gentooError('EGENTOO_DOWNLOAD', `${url}: more than ${opts.maxBytes} bytes, too large for this kind of file; the mirror is broken, try another one`));
          return;
        }
        armStall();
        const now = Date.now();
        if (opts.onProgress && now - lastReport > 250) {
          lastReport = now;
          opts.onProgress({ url, received, total });
        }
        cb(null, chunk);
      },
    });
    if (!res.body) throw gentooError('EGENTOO_DOWNLOAD', `${url}: empty response body`);
    try {
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), counter, createWriteStream(part, { flags }));
    } catch (e) {
      if (opts.signal?.aborted) throw new HnError('EABORTED', `download stopped: ${url} (kept ${received} bytes to resume)`);
      if (e instanceof HnError) {
        await rm(part, { force: true });
        throw e;
      }
      throw gentooError('EGENTOO_TRUNCATED', `${url}: connection ended after ${received}${total ? ` of ${total}` : ''} bytes (${errText(e)}); rerun to resume`, { cause: e });
    }
    opts.onProgress?.({ url, received, total });
    const final = (await sizeOf(part)) ?? 0;
    if (total !== undefined && final < total) {
      throw gentooError('EGENTOO_TRUNCATED', `${url}: got ${final} of ${total} bytes; rerun to resume the download`);
    }
    if (total !== undefined && final > total) {
      await rm(part, { force: true });
      throw gentooError('EGENTOO_DOWNLOAD', `${url}: got ${final} bytes, more than the ${total} announced; discarded, rerun`);
    }
    await rename(part, dest);
    return final;
  } finally {
    if (stallTimer) clearTimeout(stallTimer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** Downloads a small file (index, signature, digests) and returns its text. */
export async function downloadText(url: string, dest: string, opts: DownloadOptions = {}): Promise<string> {
  await rm(`${dest}.part`, { force: true });
  await download(url, dest, { maxBytes: SMALL_FILE_LIMIT, ...opts });
  return readFile(dest, 'utf8');
}

/**
 * Tries each mirror in order. A missing file or a network failure moves on to
 * the next mirror; the last error is thrown if none works. A partial download
 * is resumed from the next mirror (same file name, same .part).
 */
export async function fromMirrors<T>(mirrors: readonly string[], attempt: (mirror: string) => Promise<T>, log?: (line: string) => void): Promise<T> {
  let last: unknown;
  for (const mirror of mirrors) {
    try {
      return await attempt(mirror);
    } catch (e) {
      const code = e instanceof HnError ? e.code : '';
      if (!['EGENTOO_DOWNLOAD', 'EGENTOO_MISSING_FILE', 'EGENTOO_TRUNCATED'].includes(code)) throw e;
      log?.(`mirror ${mirror}: ${(e as Error).message}`);
      last = e;
    }
  }
  throw last ?? gentooError('EGENTOO_PROFILE', 'gentoo.mirrors is empty; name at least one mirror in the profile');
}

function errText(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error ? `${e.message}: ${cause.message}` : e.message;
  }
  return String(e);
}
