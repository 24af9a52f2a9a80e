// The Debian base, bootstrapped straight into the mounted image by mmdebstrap.
// Downloaded packages go through the host's package cache (sync-in before,
// sync-out after), so a second build downloads nothing.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { need } from '../pipeline/context.ts';
import { entry } from '../pipeline/seam/catalogue.ts';
import { cmd, formatCommand, type Command } from '../pipeline/seam/command.ts';
import type { StageDef } from '../pipeline/stage.ts';
import { mountsBelow, umountPatiently } from '../pipeline/seam/system.ts';
import type { BuildContext } from '../pipeline/context.ts';
import { portablePath } from '../pipeline/portable-paths.ts';


export const mmdebstrapCommand = entry('mmdebstrap', (opts: { suite: string; mirror: string; root: string; variant: string; components: string[]; aptCache: string }): Command => ({
    file: 'mmdebstrap',
    args: [
      '--mode=root',
      `--variant=${opts.variant}`,
      `--components=${opts.components.join(',')}`,
      // The image is thrown away if the build fails, so dpkg need not fsync every file.
      '--dpkgopt=force-unsafe-io',
      '--aptopt=Acquire::Retries "2"',
      // Keep downloaded packages and index files: the cache sync below and the package stage use them.
      '--skip=essential/unlink',
      '--skip=cleanup/apt/lists',
      `--setup-hook=mkdir -p "$1/var/cache/apt/archives"`,
      `--setup-hook=sync-in ${opts.aptCache} /var/cache/apt/archives`,
      `--customize-hook=sync-out /var/cache/apt/archives ${opts.aptCache}`,
      opts.suite,
      opts.root,
      opts.mirror,
    ],
    timeoutMs: 20 * 60_000,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C.UTF-8', TMPDIR: '/tmp' },
}));

const commandFor = (ctx: BuildContext, root: string, aptCache = ctx.paths.aptArchives) => {
  const deb = ctx.profile.debian!;
  return mmdebstrapCommand({ suite: deb.suite, mirror: ctx.mirror ?? '$MIRROR', root, variant: deb.variant, components: deb.components, aptCache });
};

export const debianBootstrap: StageDef = {
  name: 'debian-bootstrap',
  needs: ['mirror', 'root'],
  title: 'Bootstrap the Debian base (mmdebstrap)',
  kind: 'mutate',
  commands: [mmdebstrapCommand, cmd.umount],
  // A checkpoint here makes a changed package list, or an interrupted install, resume after the bootstrap.
  checkpoint: true,
  bases: ['debian'],
  needsRoot: true,
  version: 1,
  // The cache as <cache>: moving it must not change the key (pipeline/portable-paths.ts).
  inputs: (ctx) => ({ command: commandFor(ctx, '/ROOT', portablePath(ctx, ctx.paths.aptArchives)), mirrorDate: ctx.mirrorDate }),
  plan: (ctx) => [formatCommand(commandFor(ctx, ctx.paths.root))],
  async run(ctx, io) {
    const root = need(ctx, 'root');
    await mkdir(ctx.paths.aptArchives, { recursive: true });
    let n = 0;
    await io.run(commandFor(ctx, root), {
      onLine: (line) => {
        if (/^(I: |Unpacking |Setting up )/.test(line)) io.progress(`${++n} steps: ${line.slice(0, 60)}`);
      },
    });
    // mmdebstrap mounts proc, sys and dev itself and only warns when it cannot unmount them
    // ("W: umount /proc failed"); whatever it left is unmounted here, before anything stacks on it.
    for (const leftover of (await mountsBelow(root)).filter((m) => m !== root)) {
      io.log(`mmdebstrap left ${leftover} mounted; unmounting it`);
      await umountPatiently(leftover);
    }
  },
};
