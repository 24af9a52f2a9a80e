// The profile's packages, installed with apt inside the chroot. The host's
// package cache is bind-mounted over the image's, so downloads are kept on
// the host and never land in the image.

import { join } from 'node:path';
import { need, type BuildContext } from '../pipeline/context.ts';
import { entry } from '../pipeline/seam/catalogue.ts';
import { cmd, formatCommand, type Command } from '../pipeline/seam/command.ts';
import { imageFs } from '../pipeline/seam/image-fs.ts';
import { mountOn } from '../pipeline/seam/system.ts';
import type { StageDef } from '../pipeline/stage.ts';
import { HnError } from '../pipeline/errors.ts';

export const aptInstallCommand = entry(cmd.chroot.programs, (root: string, packages: string[], installRecommends: boolean): Command =>
  cmd.chroot(root, [
    'apt-get',
    'install',
    '--yes',
    '-o', 'Dpkg::Options::=--force-unsafe-io',
    '-o', 'Dpkg::Options::=--force-confdef',
    '-o', 'Dpkg::Options::=--force-confold',
    '-o', 'Dpkg::Use-Pty=0',
    '-o', 'APT::Keep-Downloaded-Packages=true',
    '-o', 'Acquire::Retries=2',
    installRecommends ? '--install-recommends' : '--no-install-recommends',
    ...packages,
  ],
  30 * 60_000,
  // The image boots with hnforge's own initramfs; Debian's kernel hook honours INITRD=No and
  // skips building its own (two initramfs runs cost ~30 s per build).
  { INITRD: 'No' }));

const command = (ctx: BuildContext, root: string) => aptInstallCommand(root, ctx.profile.packages, ctx.profile.debian!.installRecommends);

export const debianPackages: StageDef = {
  name: 'debian-packages',
  needs: ['mirror', 'root'],
  title: 'Install the profile packages (apt)',
  kind: 'mutate',
  bases: ['debian'],
  needsRoot: true,
  version: 3,
  checkpoint: true,
  commands: [aptInstallCommand, cmd.mount, cmd.umount],
  // The whole command line is the input: any change to how apt is called re-runs the stage.
  inputs: (ctx) => command(ctx, '/ROOT'),
  plan: (ctx) => [
    formatCommand(cmd.mount(ctx.paths.aptArchives, join(ctx.paths.root, 'var/cache/apt/archives'), { bind: true })),
    formatCommand(command(ctx, ctx.paths.root)),
  ],
  async run(ctx, io) {
    const root = need(ctx, 'root');
    const image = imageFs(root);
    // Resolved inside the image: a bind mount through an image's symlink would cover a host directory.
    const cacheMount = await mountOn(ctx.stack, ctx.paths.aptArchives, await image.mkdirp('var/cache/apt/archives'), { bind: true });
    try {
      let total = 0;
      let done = 0;
      const unknown: string[] = [];
      try {
        await io.run(command(ctx, root), {
          onLine: (line) => {
            const planned = /^(\d+) upgraded, (\d+) newly installed/.exec(line);
            if (planned) total = Number(planned[2]);
            const missing = /^E: Unable to locate package (\S+)/.exec(line);
            if (missing) unknown.push(missing[1]!);
            if (line.startsWith('Setting up ')) io.progress(`package ${++done} of ${total || '?'}`);
            else if (line.startsWith('Get:') && total) io.progress(`downloading (${total} packages)`);
          },
        });
      } catch (e) {
        if (unknown.length) {
          throw new HnError('EPACKAGE', `package${unknown.length > 1 ? 's' : ''} not found on ${ctx.mirror}: ${unknown.join(', ')}; fix 'packages' in the profile`);
        }
        throw e;
      }
    } finally {
      await cacheMount.release();
    }
    // The package lists and apt's binary caches (~100 MB together) are not needed after this
    // point (the scrub would remove them anyway); dropping them before the checkpoint keeps the
    // work image and its snapshot at the size of the final image (the disk budget is 2x that).
    await image.remove('var/lib/apt/lists');
    await image.mkdirp('var/lib/apt/lists/partial');
    for (const bin of ['pkgcache.bin', 'srcpkgcache.bin']) await image.remove(`var/cache/apt/${bin}`);
  },
};
