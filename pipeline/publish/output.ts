// Publishing a finished image into the output directory: `<dir>/hn-root.img`,
// its checksum sidecar and the build report.
//
// The published image is always its own file: a reflink where the filesystem
// can share blocks copy-on-write, else a sparse copy (cmd.copySparse), never a
// hard link. Anyone may then open it read-write (a probe, a test, debugfs -w)
// without reaching the cache entry it came from. Everything is written under a
// temporary name and renamed: nothing appears under a final name unless it is
// complete, and every temporary name is removed again whatever happens.

import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { computeSidecar, formatSidecar, parseSidecar } from '../boot/sidecar.ts';
import { HnError } from '../errors.ts';
import { fileIdentity, formatReportJson, summarise, type BuildReport } from '../report.ts';
import { cmd } from '../seam/command.ts';
import { run } from '../seam/run.ts';

export interface PublishRequest {
  /** The image to publish (a cache entry, or the work image); it is copied, never linked or changed. */
  source: string;
  /** Directory of the published files (`<output>/<profile>`). */
  dir: string;
  /** Name of the published image (the profile's `image.fileName`). */
  fileName: string;
  /** Written into the sidecar (informational). */
  version: string;
  /** Write the checksum sidecar (`<fileName>.sha256`); without it an older sidecar is removed. */
  sidecar: boolean;
  /** The build report, less what publishing decides (where the image is, its size and sha256, the wall time). */
  report: Omit<BuildReport, 'image' | 'sha256' | 'apparentBytes' | 'usedBytes' | 'wallSeconds'>;
  /** When the build started (Date.now()): the report's wall time includes publishing. */
  startedAt: number;
}

export interface Published {
  image: string;
  report: string;
  sha256?: string;
}

/** Name a file has while it is being written. */
export const PARTIAL = '.partial';

/** The files beside a published image: its checksum sidecar and its report (JSON and text). */
export function outputFiles(image: string) {
  const base = `${image.replace(/\.img$/, '')}.report`;
  return { image, sidecar: `${image}.sha256`, json: `${base}.json`, text: `${base}.txt` };
}

export async function publishImage(req: PublishRequest): Promise<Published> {
  const files = outputFiles(join(req.dir, req.fileName));
  const temporaries = [...Object.values(files).map((f) => f + PARTIAL), `${req.source}.sha256${PARTIAL}`];
  try {
    // Computed (once) beside the source: a failure here is the cache's, not the output's.
    const sidecar = req.sidecar ? await sidecarOf(req.source, req.version) : undefined;
    try {
      await mkdir(req.dir, { recursive: true });
      await removeAll(temporaries); // left by a publish that was killed
      await run(cmd.copySparse(req.source, files.image + PARTIAL));
      // The sidecar goes first: an image under its final name always has its checksum beside it.
      if (sidecar) await writeAtomically(files.sidecar, sidecar.text);
      else await rm(files.sidecar, { force: true }); // never leave an older image's checksum beside this one
      await rename(files.image + PARTIAL, files.image);
      const info = await stat(files.image);
      const report: BuildReport = {
        ...req.report, image: files.image, sha256: sidecar?.sha256, imageIdentity: sidecar ? await fileIdentity(files.image) : undefined, wallSeconds: (Date.now() - req.startedAt) / 1000, apparentBytes: info.size, usedBytes: info.blocks * 512,
      };
      await writeAtomically(files.json, formatReportJson(report));
      await writeAtomically(files.text, summarise(report));
      return { image: files.image, report: files.json, sha256: sidecar?.sha256 };
    } catch (e) {
      throw await explain(e, req);
    }
  } catch (e) {
    await removeAll(temporaries);
    throw e;
  }
}

/**
 * The checksum sidecar of an image (format: pipeline/boot/sidecar.ts), computed once and kept
 * beside it, so republishing a cached image costs no second pass over 15 GiB.
 */
async function sidecarOf(image: string, version: string): Promise<{ text: string; sha256: string }> {
  const path = `${image}.sha256`;
  let text = await readFile(path, 'utf8').catch(() => undefined);
  if (!text) {
    text = formatSidecar(await computeSidecar(image, version));
    await writeAtomically(path, text);
  }
  return { text, sha256: parseSidecar(text).sha256 };
}

/** Writes `text` to `path` through a temporary name, so `path` is never half-written. */
async function writeAtomically(path: string, text: string) {
  await writeFile(path + PARTIAL, text);
  await rename(path + PARTIAL, path);
}

async function removeAll(paths: string[]) {
  for (const p of paths) await rm(p, { force: true }).catch(() => undefined);
}

/** One line for what the user can fix (a full or unwritable output); anything else as it came. */
async function explain(e: unknown, req: PublishRequest): Promise<unknown> {
  const errno = (e as NodeJS.ErrnoException).code;
  const text = [String((e as Error)?.message ?? e), ...((e as HnError).details ?? [])].join('\n');
  if (errno === 'ENOSPC' || /No space left/i.test(text)) {
    const used = await stat(req.source).then((s) => `${(s.blocks / 2048).toFixed(0)} MiB`, () => 'unknown size');
    return new HnError('ENOSPACE', `no space left in ${req.dir} for the image (${used}); free space or choose another --output`, { cause: e });
  }
  const denied = ['EACCES', 'EPERM', 'EROFS'].includes(errno ?? '') ? errno : /Read-only file system/i.test(text) ? 'read-only' : /Permission denied|Operation not permitted/i.test(text) ? 'permission denied' : undefined;
  if (denied) return new HnError('EOUTPUT', `cannot write to ${req.dir} (${denied}); make it writable or choose another --output`, { cause: e });
  return e;
}
