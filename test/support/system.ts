// What a test compares before and after: attached loop devices and mounts.
import { readFile } from 'node:fs/promises';
import { systemState } from '../../pipeline/seam/system.ts';

export { systemState };

export async function processesMatching(needle: string): Promise<number[]> {
  const { readdir } = await import('node:fs/promises');
  const pids: number[] = [];
  for (const p of await readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const cmdline = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').join(' ').includes(needle)) pids.push(Number(p));
  }
  return pids;
}
