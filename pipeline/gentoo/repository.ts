// The Gentoo ebuild repository, pinned: a dated snapshot (signed tarball,
// verified like a stage3) or a git commit (fetched on the host, its commit
// signature checked). Either way it is installed into the image at
// /var/db/repos/gentoo and never synced there.

import { mkdir, rm, access, rename, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { download, fromMirrors, SMALL_FILE_LIMIT } from './download.ts';
import { digestFile } from './digest.ts';
import { gentooCmd } from './commands.ts';
import { gentooError } from './errors.ts';
import { snapshotUrls } from './index.ts';
import { makeKeyring, verifyDetached, type Runner, seamRunner } from './openpgp.ts';
import { gentooCachePaths } from './stage3.ts';
import { scanTar } from './tarscan.ts';
import { imageFs } from '../seam/image-fs.ts';
import { REPO_LOCATION } from './portage-config.ts';

export interface SnapshotRequest {
  mirrors: readonly string[];
  date: string;
  fingerprint: string;
  keyringFile: string | undefined;
  cacheDir: string;
  tmpDir: string;
  runner?: Runner;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** Fetches and verifies gentoo-<date>.tar.xz; returns the cached path and its SHA512. */
export async function fetchVerifiedSnapshot(req: SnapshotRequest): Promise<{ path: string; sha512: string; url: string }> {
  const runner = req.runner ?? seamRunner;
  const dir = gentooCachePaths(req.cacheDir).snapshots;
  await mkdir(dir, { recursive: true });
  await mkdir(req.tmpDir, { recursive: true });
  const file = join(dir, `gentoo-${req.date}.tar.xz`);
  const sig = `${file}.gpgsig`;
  const keyring = await makeKeyring(req.keyringFile, req.tmpDir, runner);
  try {
    const have = await access(file).then(() => true, () => false) && (await access(sig).then(() => true, () => false));
    let url = snapshotUrls(req.mirrors[0]!, req.date).tarball;
    if (!have) {
      const partial = join(dir, 'downloads', `gentoo-${req.date}.tar.xz`);
      url = await fromMirrors(
        req.mirrors,
        async (m) => {
          const u = snapshotUrls(m, req.date);
          req.log?.(`download: ${u.tarball}`);
          await rm(`${partial}.gpgsig.part`, { force: true });
          await download(u.signature, `${partial}.gpgsig`, { signal: req.signal, maxBytes: SMALL_FILE_LIMIT });
          await download(u.tarball, partial, { signal: req.signal });
          return u.tarball;
        },
        req.log,
      );
      try {
        await verifyDetached(partial, `${partial}.gpgsig`, keyring, req.fingerprint, { runner, what: `gentoo-${req.date}.tar.xz` });
      } catch (e) {
        await rm(partial, { force: true });
        await rm(`${partial}.gpgsig`, { force: true });
        throw e;
      }
      await rename(`${partial}.gpgsig`, sig);
      await rename(partial, file);
    } else {
      await verifyDetached(file, sig, keyring, req.fingerprint, { runner, what: `cached gentoo-${req.date}.tar.xz` });
    }
    const { sha512 } = await digestFile(file);
    return { path: file, sha512, url };
  } finally {
    await keyring.dispose();
  }
}

/** Unpacks a verified snapshot into <root>/var/db/repos/gentoo (scanned first, top directory stripped). */
export async function installSnapshot(root: string, snapshot: string, tmpDir: string, runner: Runner = seamRunner): Promise<void> {
  const tar = join(tmpDir, 'gentoo-snapshot.tar');
  await mkdir(tmpDir, { recursive: true });
  try {
    await runner(gentooCmd.xzDecompress(snapshot, tar));
    await scanTar(tar, { stripComponents: 1, what: 'the Gentoo repository snapshot' });
    await imageFs(root).remove(REPO_LOCATION);
    const dest = await imageFs(root).mkdirp(REPO_LOCATION);
    await runner(gentooCmd.tarExtract(tar, dest, { stripComponents: 1 }));
  } finally {
    await rm(tar, { force: true });
  }
}

/** Fetches one commit of the repository on the host, checks its signature, copies it into the image. */
export async function installGitCommit(opts: {
  root: string;
  url: string;
  commit: string;
  keyringFile: string | undefined;
  cacheDir: string;
  tmpDir: string;
  runner?: Runner;
}): Promise<void> {
  const runner = opts.runner ?? seamRunner;
  const dir = join(gentooCachePaths(opts.cacheDir).base, 'repo-git', opts.commit);
  if (!(await access(join(dir, '.git')).then(() => true, () => false))) {
    await rm(dir, { recursive: true, force: true });
    for (const c of gentooCmd.gitFetchCommit(dir, opts.url, opts.commit)) await runner(c);
  }
  if (!opts.keyringFile) throw gentooError('EGENTOO_KEYRING', 'gentoo.keyring is needed to check the pinned commit signature');
  await mkdir(opts.tmpDir, { recursive: true });
  const home = await mkdtemp(join(opts.tmpDir, 'hnforge-gnupg-'));
  try {
    await runner(gentooCmd.gpgImport(home, opts.keyringFile));
    try {
      await runner(gentooCmd.gitVerifyCommit(dir, home, opts.commit));
    } catch (e) {
      throw gentooError('EGENTOO_SIGNATURE', `git commit ${opts.commit} of ${opts.url} is not signed by a key in ${opts.keyringFile}; pin a signed commit`, { cause: e });
    }
  } finally {
    await rm(home, { recursive: true, force: true });
  }
  const image = imageFs(opts.root);
  await image.remove(REPO_LOCATION);
  const dest = await image.mkdirp(REPO_LOCATION);
  await runner(gentooCmd.copyTree(dir, dest));
  await image.remove(`${REPO_LOCATION}/.git`);
}
