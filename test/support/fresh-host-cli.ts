// bin/hnforge-fresh-host [--keep] [--no-caches] -- COMMAND...
// Runs COMMAND as root in /root/hnforge of a fresh minimal Debian 12 tree
// (test/support/fresh-host.ts), then cleans up; exits with COMMAND's code.
// Example: bin/hnforge-fresh-host -- npm test
// The host's npm cache and .deb download caches are offered inside unless
// --no-caches (then everything is downloaded, as on a really new machine).
import { join } from 'node:path';
import { killRunningCommands } from '../../pipeline/seam/run.ts';
import { createFreshHost } from './fresh-host.ts';

const args = process.argv.slice(2);
const dash = args.indexOf('--');
const flags = dash < 0 ? args : args.slice(0, dash);
const command = dash < 0 ? [] : args.slice(dash + 1);
const unknown = flags.filter((f) => f !== '--keep' && f !== '--no-caches');
if (!command.length || unknown.length) {
  process.stderr.write(`hnforge-fresh-host: usage: hnforge-fresh-host [--keep] [--no-caches] -- COMMAND...${unknown.length ? ` (unknown: ${unknown.join(' ')})` : ''}\n`);
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('hnforge-fresh-host: run as root (it bootstraps a tree, mounts into it and chroots)\n');
  process.exit(1);
}

const say = (line: string) => process.stderr.write(`hnforge-fresh-host: ${line}\n`);
const caches = !flags.includes('--no-caches');
const host = await createFreshHost({
  repoDir: join(import.meta.dirname, '../..'),
  shareNpmCache: caches,
  debCaches: caches ? { apt: ['/var/cache/apt/archives'], build: ['/var/cache/hnforge/apt/archives', '/var/cache/hnforge-test/apt/archives'] } : undefined,
  log: say,
});
let code = 1;
// The command runs in a process group of its own (no terminal signal reaches it): end it, then clean up.
const stop = () => {
  say('interrupted: ending the command, then cleaning up');
  killRunningCommands();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
try {
  say(`running in ${host.root}/root/hnforge: ${command.join(' ')}`);
  code = await host.run(command, { timeoutMs: 6 * 60 * 60_000, onLine: (line) => process.stdout.write(`${line}\n`) });
  say(`exit code ${code}`);
} finally {
  const { unmounted, detached } = await host.dispose({ keep: flags.includes('--keep') });
  say(`cleaned up: ${unmounted.length} mounts, ${detached.length} loop devices`);
}
process.exitCode = code;
