// Runs bin/hnforge as a user would, with a hard timeout.
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export const repoDir = join(import.meta.dirname, '../..');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

export function hnforge(
  args: string[],
  opts: { timeoutMs?: number; asNobody?: boolean; onStderr?: (chunk: string, child: ReturnType<typeof spawn>) => void } = {},
): Promise<CliResult> {
  const t0 = Date.now();
  // asNobody: proves a command needs no root (setpriv drops to nobody when we are root).
  const [file, argv] = opts.asNobody && process.getuid?.() === 0
    ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', join(repoDir, 'bin/hnforge'), ...args]]
    : [join(repoDir, 'bin/hnforge'), args];
  const child = spawn(file as string, argv as string[], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: 'true' } });
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
