// The list of installed packages with versions, for the build report.

import { need } from '../pipeline/context.ts';
import { cmd } from '../pipeline/seam/command.ts';
import type { StageDef } from '../pipeline/stage.ts';

export const inventory: StageDef = {
  name: 'inventory',
  needs: ['root'],
  provides: ['installedPackages'],
  title: 'List installed packages',
  kind: 'mutate',
  bases: ['debian'],
  needsRoot: true,
  version: 1,
  // Only the report needs it: under --keep-going a failure here still publishes the image.
  optional: true,
  commands: [cmd.chroot],
  plan: () => ["chroot ROOT dpkg-query -W -f '${Package}\\t${Version}\\n'"],
  async run(ctx, io) {
    const { stdout } = await io.run(cmd.chroot(need(ctx, 'root'), ['dpkg-query', '-W', '-f', '${Package}\t${Version}\n']), { capture: true });
    const installedPackages = stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [name = '', version = ''] = l.split('\t');
        return { name, version };
      });
    io.log(`${installedPackages.length} packages`);
    return { installedPackages };
  },
};
