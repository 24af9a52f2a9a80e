// What a test compares before and after: attached loop devices and mounts
// (scoped to the test's own directory: the machine is shared), and processes.
import { readdir, readFile } from 'node:fs/promises';
import { BUILD_TAG_VAR } from '../../pipeline/seam/build-tag.ts';
import { processesRootedIn, systemState } from '../../pipeline/seam/system.ts';

export { systemState };

export async function processesMatching(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const p of await readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const cmdline = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.split('\0').join(' ').includes(needle)) pids.push(Number(p));
  }
  return pids;
}

/** Processes of builds whose directory is below `scope`: started by one (tagged) or rooted in one. */
export async function buildProcessesBelow(scope: string): Promise<number[]> {
  const pids = new Set(await processesRootedIn(scope));
  for (const p of await readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const environ = await readFile(`/proc/${p}/environ`, 'utf8').catch(() => '');
    if (environ.split('\0').some((v) => v.startsWith(`${BUILD_TAG_VAR}=${scope}/`))) pids.add(Number(p));
  }
  return [...pids].sort((a, b) => a - b);
}

/** Everything a build below `scope` could leave: mounts, loop devices (deleted back-files too), processes. */
export async function leftoversBelow(scope: string) {
  return { ...(await systemState(scope)), processes: await buildProcessesBelow(scope) };
}
