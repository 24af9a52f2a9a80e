// gentoo-scrub: what the shared scrub does not know about Gentoo: the
// build-only portage files and make.conf's build-only block, and the
// pipeline's work directory. Runs after gentoo-unbind, before scrub.

import { need } from '../pipeline/context.ts';
import type { StageDef } from '../pipeline/stage.ts';
import { IMAGE_WORK_DIR } from '../pipeline/gentoo/commands.ts';
import { BUILD_ONLY, MAKE_CONF, stripBuildOnlyBlock } from '../pipeline/gentoo/portage-config.ts';
import { imageFs } from '../pipeline/seam/image-fs.ts';

export const GENTOO_SCRUB = [...BUILD_ONLY.files, IMAGE_WORK_DIR];

export const gentooScrub: StageDef = {
  name: 'gentoo-scrub',
  needs: ['root'],
  title: 'Remove Gentoo build-only settings',
  kind: 'mutate',
  bases: ['gentoo'],
  needsRoot: true,
  version: 1,
  inputs: () => ({ remove: GENTOO_SCRUB }),
  plan: () => [...GENTOO_SCRUB.map((p) => `rm -r ${p}`), `strip the build-only block from ${MAKE_CONF}`],
  async run(ctx, io) {
    const image = imageFs(need(ctx, 'root'));
    for (const p of GENTOO_SCRUB) {
      await image.remove(p);
      io.log(`removed ${p}`);
    }
    const makeConf = (await image.exists(MAKE_CONF)) ? await image.readText(MAKE_CONF) : undefined;
    if (makeConf !== undefined) {
      await image.write(MAKE_CONF, stripBuildOnlyBlock(makeConf));
      io.log(`stripped the build-only block from ${MAKE_CONF}`);
    }
  },
};
