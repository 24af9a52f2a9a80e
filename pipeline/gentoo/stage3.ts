// Fetching a stage3 the way a careful person would: resolve it from the
// clearsigned index (or a pinned timestamp), download with resume, check the
// detached signature against the pinned release key and both digests, and
// only then file it in the cache under its SHA512. A cached tarball is
// checked again on every build, so a corrupted cache is caught too.

import { mkdir, rm, rename, access, writeFile, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { download, downloadText, fromMirrors, SMALL_FILE_LIMIT, type DownloadProgress } from './download.ts';
import { digestFile, checkDigests } from './digest.ts';
import {
  indexUrl, isClearsigned, parseDigests, parseStage3Index, requireDigests, resolveStage3, stage3FileName, stage3Urls,
  type Stage3Entry,
} from './index.ts';
import { makeKeyring, verifyClearsigned, verifyDetached, type Keyring, type Runner, seamRunner } from './openpgp.ts';

export interface VerifiedStage3 {
  /** URL the tarball was (or would be) fetched from. */
  url: string;
  mirror: string;
  timestamp: string;
  fileName: string;
  /** Verified tarball in the cache (cacheDir/gentoo/blobs/<sha512>.tar.xz). */
  path: string;
  sha512: string;
  blake2b: string;
  bytes: number;
  /** Fingerprint the signature was checked against. */
  fingerprint: string;
  fromCache: boolean;
}

export interface Stage3Request {
  mirrors: readonly string[];
  variant: string;
  /** 'latest' or a timestamp like 20260503T164604Z */
  stage3: string;
  fingerprint: string;
  /** Armored key file (absolute path). */
  keyringFile: string | undefined;
  cacheDir: string;
  /** Scratch directory for the temporary keyring and the index. */
  tmpDir: string;
  runner?: Runner;
  onProgress?: (p: DownloadProgress) => void;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export function gentooCachePaths(cacheDir: string) {
  const base = join(cacheDir, 'gentoo');
  return {
    base,
    blobs: join(base, 'blobs'),
    downloads: join(base, 'downloads'),
    releases: join(base, 'stage3'),
    snapshots: join(base, 'snapshots'),
    distfiles: join(base, 'distfiles'),
    binpkgs: join(base, 'binpkgs'),
    binhost: join(base, 'binhost'),
    genkernel: join(base, 'genkernel'),
  };
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(() => true, () => false);
}

/** Resolves which stage3 to use: reads the verified index for 'latest'. */
export async function resolveEntry(req: Stage3Request, keyring: Keyring): Promise<{ entry: Stage3Entry; mirror?: string }> {
  if (req.stage3 !== 'latest') return { entry: resolveStage3(undefined, req.variant, req.stage3) };
  const runner = req.runner ?? seamRunner;
  return fromMirrors(
    req.mirrors,
    async (mirror) => {
      const url = indexUrl(mirror, req.variant);
      const local = join(req.tmpDir, `latest-stage3-amd64-${req.variant}.txt`);
      req.log?.(`index: ${url}`);
      await downloadText(url, local, { signal: req.signal });
      const body = await verifyClearsigned(local, keyring, req.fingerprint, { runner, what: url });
      return { entry: resolveStage3(parseStage3Index(body, req.variant, url), req.variant, 'latest'), mirror };
    },
    req.log,
  );
}

/** Reads (and verifies, if clearsigned) a .DIGESTS file and returns the tarball's digests. */
async function readDigests(file: string, fileName: string, keyring: Keyring, fingerprint: string, runner: Runner) {
  const text = await readFile(file, 'utf8');
  const body = isClearsigned(text) ? await verifyClearsigned(file, keyring, fingerprint, { runner, code: 'EGENTOO_SIGNATURE', what: `${fileName}.DIGESTS` }) : text;
  return requireDigests(parseDigests(body, fileName), fileName);
}

export async function fetchVerifiedStage3(req: Stage3Request): Promise<VerifiedStage3> {
  const runner = req.runner ?? seamRunner;
  const paths = gentooCachePaths(req.cacheDir);
  await Promise.all([paths.blobs, paths.downloads, paths.releases, req.tmpDir].map((d) => mkdir(d, { recursive: true })));
  const keyring = await makeKeyring(req.keyringFile, req.tmpDir, runner);
  const pendingFiles: string[] = [];
  try {
    const { entry, mirror: indexMirror } = await resolveEntry(req, keyring);
    const fileName = stage3FileName(req.variant, entry.timestamp);
    const relDir = join(paths.releases, entry.timestamp);
    await mkdir(relDir, { recursive: true });
    const sigFile = join(relDir, `${fileName}.asc`);
    const digestsFile = join(relDir, `${fileName}.DIGESTS`);
    pendingFiles.push(`${sigFile}.new`, `${digestsFile}.new`);
    const mirrors = indexMirror ? [indexMirror, ...req.mirrors.filter((m) => m !== indexMirror)] : req.mirrors;

    // Signature and digests: small, cached per release so a pinned build works offline.
    let mirrorUsed = mirrors[0]!;
    if (!(await exists(sigFile)) || !(await exists(digestsFile))) {
      mirrorUsed = await fromMirrors(
        mirrors,
        async (m) => {
          const u = stage3Urls(m, entry);
          await rm(`${sigFile}.new.part`, { force: true });
          await rm(`${digestsFile}.new.part`, { force: true });
          await download(u.signature, `${sigFile}.new`, { signal: req.signal, maxBytes: SMALL_FILE_LIMIT });
          await download(u.digests, `${digestsFile}.new`, { signal: req.signal, maxBytes: SMALL_FILE_LIMIT });
          return m;
        },
        req.log,
      );
    }
    const sigCandidate = (await exists(`${sigFile}.new`)) ? `${sigFile}.new` : sigFile;
    const digCandidate = (await exists(`${digestsFile}.new`)) ? `${digestsFile}.new` : digestsFile;
    const expected = await readDigests(digCandidate, fileName, keyring, req.fingerprint, runner);

    const blob = join(paths.blobs, `${expected.sha512}.tar.xz`);
    const url = stage3Urls(mirrorUsed, entry).tarball;

    const verify = async (file: string) => {
      await verifyDetached(file, sigCandidate, keyring, req.fingerprint, { runner, what: fileName });
      const actual = await digestFile(file);
      checkDigests(actual, expected, fileName);
      return actual;
    };

    let fromCache = false;
    let actual;
    if (await exists(blob)) {
      req.log?.(`cache: ${blob}`);
      try {
        actual = await verify(blob);
        fromCache = true;
      } catch (e) {
        req.log?.(`cached ${fileName} failed verification, fetching it again: ${(e as Error).message}`);
        await rm(blob, { force: true });
      }
    }
    if (!actual) {
      const partial = join(paths.downloads, fileName);
      await fromMirrors(
        mirrors,
        async (m) => {
          const u = stage3Urls(m, entry).tarball;
          req.log?.(`download: ${u}`);
          await download(u, partial, { expectedBytes: entry.bytes, onProgress: req.onProgress, signal: req.signal });
        },
        req.log,
      );
      try {
        actual = await verify(partial);
      } catch (e) {
        // An unverifiable file is never kept: the next run fetches it afresh.
        await rm(partial, { force: true });
        throw e;
      }
      await rename(partial, blob);
    }
    // Keep the signature and digests that verified this blob.
    if (sigCandidate !== sigFile) await rename(sigCandidate, sigFile);
    if (digCandidate !== digestsFile) await rename(digCandidate, digestsFile);
    await writeFile(join(relDir, 'verified.json'), JSON.stringify({ fileName, sha512: expected.sha512, blake2b: expected.blake2b, bytes: actual.bytes }, null, 2));

    return {
      url, mirror: mirrorUsed, timestamp: entry.timestamp, fileName, path: blob,
      sha512: expected.sha512, blake2b: expected.blake2b, bytes: actual.bytes,
      fingerprint: req.fingerprint, fromCache,
    };
  } catch (e) {
    // Signature/digest files fetched this run but not proven good are dropped.
    for (const f of pendingFiles) await rm(f, { force: true });
    throw e;
  } finally {
    await keyring.dispose();
  }
}


/**
 * Keeps the verified stage3 tarballs of the `keep` newest releases in the
 * cache (a nightly build on 'latest' adds ~280 MB a week otherwise); the
 * signature and digests of older releases stay (a few KiB). `inUse` (SHA512s)
 * are kept whatever their age: the build's own, possibly pinned, stage3.
 * Returns the blobs removed.
 */
export async function pruneStage3Cache(cacheDir: string, keep = 2, inUse: string[] = []): Promise<string[]> {
  const paths = gentooCachePaths(cacheDir);
  const releases = (await readdir(paths.releases).catch(() => [] as string[])).filter((d) => /^\d{8}T\d{6}Z$/.test(d)).sort().reverse();
  const wanted = new Set<string>(inUse.map((sha) => `${sha}.tar.xz`));
  for (const ts of releases.slice(0, keep)) {
    const v = await readFile(join(paths.releases, ts, 'verified.json'), 'utf8').then((t) => JSON.parse(t) as { sha512?: string }, () => undefined);
    if (v?.sha512) wanted.add(`${v.sha512}.tar.xz`);
  }
  const removed: string[] = [];
  for (const blob of await readdir(paths.blobs).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{128}\.tar\.xz$/.test(blob) || wanted.has(blob)) continue;
    await rm(join(paths.blobs, blob), { force: true });
    removed.push(blob);
  }
  return removed;
}
