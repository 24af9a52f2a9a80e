// Runs bin/hnforge as a user would, with a hard timeout.
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { chmod, cp, mkdtemp, realpath } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const repoDir = join(import.meta.dirname, '../..');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** What bin/hnforge reads at run time (the CLI, its stages and profiles, boot/ files, dependencies). */
const RUNTIME_ENTRIES = ['bin', 'pipeline', 'stages', 'profiles', 'data', 'boot', 'portage-overlay', 'package.json', 'package-lock.json', 'tsconfig.json', 'node_modules'];

let readableCopy: Promise<string> | undefined;

/**
 * A copy of the repository that every user can read. A clone under /root (mode
 * 700) is out of reach of the unprivileged user a no-root test runs as, so such
 * a test runs this copy instead. Times are kept (cp preserves them), so
 * bin/hnforge sees its dependencies as installed and runs no npm ci.
 */
function worldReadableRepo(): Promise<string> {
  readableCopy ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hnforge-readable-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    await chmod(dir, 0o755);
    for (const name of RUNTIME_ENTRIES) {
      // realpath: node_modules may be a symlink into a directory nobody else can read either.
      const from = await realpath(join(repoDir, name)).catch(() => undefined);
      if (from) await cp(from, join(dir, name), { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    }
    return dir;
  })();
  return readableCopy;
}

export async function hnforge(
  args: string[],
  opts: { timeoutMs?: number; asNobody?: boolean; onStderr?: (chunk: string, child: ReturnType<typeof spawn>) => void } = {},
): Promise<CliResult> {
  const t0 = Date.now();
  // asNobody: proves a command needs no root (setpriv drops to nobody when we are root).
  const asNobody = opts.asNobody && process.getuid?.() === 0;
  const readable = asNobody ? await worldReadableRepo() : undefined;
  const [file, argv] = readable
    ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', join(readable, 'bin/hnforge'), ...args]]
    : [join(repoDir, 'bin/hnforge'), args];
  // nobody also needs a working directory it can enter.
  const child = spawn(file as string, argv as string[], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: 'true' }, cwd: readable });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => {
    stderr += d;
    opts.onStderr?.(String(d), child);
  });
  const timer = setTimeout(() => child.kill('SIGTERM'), opts.timeoutMs ?? 600_000);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, seconds: (Date.now() - t0) / 1000 });
    }),
  );
}
