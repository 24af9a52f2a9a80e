// Mounts a finished image read-only for inspection, through the seam, with
// its release registered; `release()` undoes it even after a failed assertion.
import { mkdtemp, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResourceStack } from '../../pipeline/seam/resources.ts';
import { run } from '../../pipeline/seam/run.ts';
import { mountOn } from '../../pipeline/seam/system.ts';

export async function mountImageReadOnly(image: string): Promise<{ root: string; release: () => Promise<void> }> {
  const stack = new ResourceStack();
  const root = await mkdtemp(join(tmpdir(), 'hnimg-'));
  stack.push(`directory ${root}`, () => rmdir(root));
  const { stdout } = await run({ file: 'losetup', args: ['--find', '--show', '--read-only', image], timeoutMs: 30_000 }, { capture: true });
  const device = stdout.trim();
  stack.push(`loop ${device}`, async () => void (await run({ file: 'losetup', args: ['--detach', device], timeoutMs: 30_000 })));
  await mountOn(stack, device, root, { options: ['ro', 'noload'] });
  return {
    root,
    release: async () => {
      const { failed } = await stack.unwind();
      if (failed.length) throw new Error(`could not release: ${failed.map((f) => f.what).join(', ')}`);
    },
  };
}
