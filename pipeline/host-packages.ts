// Installs the host's missing Debian packages on first use, so a fresh machine
// needs no set-up step: `npm run build` and `npm test` bring what they need.

import { HOST_TOOL_PACKAGES } from './seam/command.ts';
import { run } from './seam/run.ts';
import { missingTools } from './preflight.ts';

const MINUTE = 60_000;

export async function ensureHostPackages(tools: string[], say: (line: string) => void): Promise<void> {
  const missing = await missingTools(tools);
  const packages = [...new Set(missing.map((t) => HOST_TOOL_PACKAGES[t]).filter((p): p is string => Boolean(p)))];
  if (!packages.length || process.getuid?.() !== 0) return;
  say(`installing host packages: ${packages.join(' ')}`);
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive' };
  const install = { file: 'apt-get', args: ['install', '-y', '-q', '--no-install-recommends', ...packages], env, timeoutMs: 15 * MINUTE };
  try {
    await run(install);
  } catch {
    // A fresh machine may have no package lists yet.
    await run({ file: 'apt-get', args: ['update', '-q'], env, timeoutMs: 10 * MINUTE });
    await run(install);
  }
}
