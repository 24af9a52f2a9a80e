// A small real pipeline for engine tests: a real sparse image, a real loop
// mount, a stage that writes into it (checkpointed), a stage whose behaviour
// the test chooses (succeed, fail, or hang in a child process), and the real seal.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { need } from '../../pipeline/context.ts';
import { entry } from '../../pipeline/seam/catalogue.ts';
import { cmd } from '../../pipeline/seam/command.ts';
import type { StageDef } from '../../pipeline/stage.ts';
import { imageCreate } from '../../stages/image-create.ts';
import { imageMount } from '../../stages/image-mount.ts';
import { seal } from '../../stages/seal.ts';

export type Fault = 'none' | 'fail' | 'hang' | 'fail-optional';

/** A child that would run for minutes: the interrupt must end it. */
const hang = entry('sh', () => ({ file: 'sh', args: ['-c', 'echo hanging; exec sleep 297'], timeoutMs: 600_000 }));

export function engineStages(fault: Fault, runs: string[] = []): StageDef[] {
  const populate: StageDef = {
    name: 'populate', title: 'Populate', kind: 'mutate', bases: ['debian'], needsRoot: true, version: 1, checkpoint: true, commands: [cmd.sync],
    async run(ctx, io) {
      runs.push('populate');
      await writeFile(join(need(ctx, 'root'), 'populated'), 'yes\n');
      await io.run(cmd.sync());
    },
  };
  const configure: StageDef = {
    name: 'configure', title: 'Configure', kind: 'mutate', bases: ['debian'], needsRoot: true, version: 1, optional: fault === 'fail-optional', commands: [hang],
    async run(ctx, io) {
      runs.push('configure');
      if (fault === 'fail' || fault === 'fail-optional') throw new Error('configure failed on purpose');
      if (fault === 'hang') await io.run(hang());
      await writeFile(join(need(ctx, 'root'), 'configured'), 'yes\n');
    },
  };
  return [imageCreate, imageMount, populate, configure, seal];
}
