// gentoo-portage: the pinned Gentoo repository and the portage configuration
// generated from the profile. Files are written through seam/image-fs.ts
// (never following a symlink out of the image).

import { join } from 'node:path';
import { need } from '../pipeline/context.ts';
import { formatCommand } from '../pipeline/seam/command.ts';
import type { StageDef } from '../pipeline/stage.ts';
import { gentooCmd } from '../pipeline/gentoo/commands.ts';
import { GENTOO_SNAPSHOT_KEY, gentooOf, gentooTmp, keyringFile } from '../pipeline/gentoo/context.ts';
import { gentooError } from '../pipeline/gentoo/errors.ts';
import { snapshotUrls } from '../pipeline/gentoo/index.ts';
import { portageConfig, REPO_LOCATION } from '../pipeline/gentoo/portage-config.ts';
import { fetchVerifiedSnapshot, installGitCommit, installSnapshot } from '../pipeline/gentoo/repository.ts';
import { imageFs } from '../pipeline/seam/image-fs.ts';

/** Where a pinned git commit is fetched from. */
export const GENTOO_GIT_URL = 'https://github.com/gentoo-mirror/gentoo.git';

export const gentooPortage: StageDef = {
  name: 'gentoo-portage',
  needs: ['root'],
  title: 'Install the pinned Gentoo repository and portage configuration',
  kind: 'mutate',
  bases: ['gentoo'],
  needsRoot: true,
  version: 2,
  commands: [
    gentooCmd.gpgDearmor, gentooCmd.gpgvDetached, gentooCmd.xzDecompress, gentooCmd.tarExtract, // snapshot
    gentooCmd.gitFetchCommit, gentooCmd.gpgImport, gentooCmd.gitVerifyCommit, gentooCmd.copyTree, // pinned git commit
  ],
  inputs(ctx) {
    const g = gentooOf(ctx);
    return { config: portageConfig(g), repository: g.repository, mirrors: g.mirrors };
  },
  // The keys are pinned by fingerprint (in `repository`); a refreshed copy of the same key changes nothing here.
  plan(ctx) {
    const g = gentooOf(ctx);
    const root = ctx.paths.root;
    const config = portageConfig(g);
    const lines: string[] = [];
    if (g.repository.snapshot) {
      const u = snapshotUrls(g.mirrors[0]!, g.repository.snapshot);
      lines.push(`repository: ${u.tarball} signed by ${g.repository.snapshotKeyFingerprint ?? GENTOO_SNAPSHOT_KEY} (${u.signature})`);
      lines.push(formatCommand(gentooCmd.tarExtract('<snapshot>.tar', join(root, REPO_LOCATION), { stripComponents: 1 })));
    } else if (g.repository.gitCommit) {
      lines.push(`repository: ${GENTOO_GIT_URL} at commit ${g.repository.gitCommit} (commit signature checked)`);
    }
    for (const [path, content] of Object.entries(config.files)) {
      lines.push(`write ${path}${config.buildOnly.includes(path) ? ' (build only, removed by the scrub)' : ''}:`);
      for (const l of content.trimEnd().split('\n')) lines.push(`    ${l}`);
    }
    for (const [path, target] of Object.entries(config.symlinks)) lines.push(`ln -s ${target} ${path}`);
    for (const path of config.remove) lines.push(`rm ${path}`);
    return lines;
  },
  async run(ctx, io) {
    const g = gentooOf(ctx);
    const root = need(ctx, 'root');
    const config = portageConfig(g);
    const tmp = gentooTmp(ctx);

    if (g.repository.snapshot) {
      io.progress(`repository snapshot ${g.repository.snapshot}`);
      const snap = await fetchVerifiedSnapshot({
        mirrors: g.mirrors, date: g.repository.snapshot, fingerprint: g.repository.snapshotKeyFingerprint ?? GENTOO_SNAPSHOT_KEY,
        keyringFile: keyringFile(ctx), cacheDir: ctx.cacheDir, tmpDir: tmp, runner: io.run, log: io.log, signal: io.signal,
      });
      io.log(`repository snapshot verified: ${snap.url} sha512 ${snap.sha512}`);
      io.progress('unpacking the repository snapshot');
      await installSnapshot(root, snap.path, tmp, io.run);
    } else if (g.repository.gitCommit) {
      io.progress(`repository at ${g.repository.gitCommit.slice(0, 12)}`);
      await installGitCommit({ root, url: GENTOO_GIT_URL, commit: g.repository.gitCommit, keyringFile: keyringFile(ctx), cacheDir: ctx.cacheDir, tmpDir: tmp, runner: io.run });
    }

    io.progress('writing portage configuration');
    const image = imageFs(root);
    for (const [path, content] of Object.entries(config.files)) {
      await image.write(path, content, { mode: 0o644 });
      io.log(`wrote ${path}`);
    }
    for (const path of config.remove) {
      await image.remove(path);
      io.log(`removed ${path}`);
    }
    for (const [path, target] of Object.entries(config.symlinks)) {
      await image.symlink(target, path);
      io.log(`${path} -> ${target}`);
    }
    if (!(await image.stat(join(REPO_LOCATION, 'profiles', g.portageProfile)))?.isDirectory()) {
      throw gentooError('EGENTOO_PROFILE', `the pinned repository has no profile ${g.portageProfile}; fix gentoo.portageProfile (e.g. default/linux/amd64/23.0/systemd)`);
    }
  },
};
