// The one place hnforge starts external programs. Each command runs in its own
// process group so that a timeout or an interrupt can end it together with
// everything it spawned (apt -> dpkg -> maintainer scripts), and its output is
// streamed line by line to the stage log instead of being buffered in memory.

import { execa } from 'execa';
import type { Readable, Writable } from 'node:stream';
import { createInterface } from 'node:readline';
import { HnError, InterruptedError } from '../errors.ts';
import { buildTagEnv } from './build-tag.ts';
import { type Command, formatCommand, HOST_TOOL_PACKAGES } from './command.ts';
import { assertDeclared } from './declared.ts';

export interface RunOptions {
  /** Receives every output line (stdout and stderr interleaved). */
  onLine?: (line: string) => void;
  /** Keep stdout and return it (for short outputs such as losetup --show). */
  capture?: boolean;
  /** Exit codes that are not failures (e2fsck returns 1 after fixing). */
  okExitCodes?: number[];
  signal?: AbortSignal;
  /** An open file descriptor handed to the command as its fd 3 (flock locks it for us). */
  fd3?: number;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
}

const live = new Set<number>();
const KILL_GRACE_MS = 5_000;

function killGroup(pid: number, signal: NodeJS.Signals) {
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

/** Ends every command still running (used by the interrupt handler). */
export function killRunningCommands(): number {
  for (const pid of live) killGroup(pid, 'SIGTERM');
  const n = live.size;
  if (n) setTimeout(() => [...live].forEach((pid) => killGroup(pid, 'SIGKILL')), KILL_GRACE_MS).unref();
  return n;
}

/**
 * While `work` runs, SIGINT and SIGTERM end every running command (they run in
 * their own process groups, so a terminal's Ctrl-C reaches only us) and abort
 * the returned signal with an InterruptedError naming the signal.
 */
export async function untilInterrupted<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const on = (name: NodeJS.Signals) => () => {
    if (!abort.signal.aborted) abort.abort(new InterruptedError(name));
    killRunningCommands();
  };
  const sigint = on('SIGINT');
  const sigterm = on('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);
  try {
    return await work(abort.signal);
  } finally {
    process.off('SIGINT', sigint);
    process.off('SIGTERM', sigterm);
  }
}

export function runningCommandCount(): number {
  return live.size;
}

export async function run(command: Command, opts: RunOptions = {}): Promise<RunResult> {
  const shown = formatCommand(command);
  assertDeclared(command);
  if (opts.signal?.aborted) throw new HnError('EABORTED', `not started (build is stopping): ${shown}`);
  const stdin = command.input === undefined ? 'ignore' : 'pipe';
  const child = execa(command.file, command.args, {
    // Tagged with the build directory, so a later build can find what a killed one left running.
    env: { ...command.env, ...buildTagEnv() },
    extendEnv: command.env === undefined,
    cwd: command.cwd,
    input: command.input,
    // execa's types only allow fds 3-9 here; any open descriptor works at run time.
    stdio: opts.fd3 === undefined ? [stdin, 'pipe', 'pipe'] : [stdin, 'pipe', 'pipe', opts.fd3 as 3],
    all: true,
    reject: false,
    detached: true,
    stripFinalNewline: false,
    buffer: { stdout: Boolean(opts.capture), stderr: false, all: false },
  });
  const pid = child.pid;
  if (pid !== undefined) live.add(pid);

  let timedOut = false;
  const stop = (why: 'timeout' | 'abort') => {
    if (pid === undefined) return;
    if (why === 'timeout') timedOut = true;
    killGroup(pid, 'SIGTERM');
    setTimeout(() => killGroup(pid, 'SIGKILL'), KILL_GRACE_MS).unref();
  };
  const timer = command.timeoutMs ? setTimeout(() => stop('timeout'), command.timeoutMs) : undefined;
  timer?.unref();
  const onAbort = () => stop('abort');
  opts.signal?.addEventListener('abort', onAbort, { once: true });

  const tail: string[] = [];
  const lines = child.all ? createInterface({ input: child.all, crlfDelay: Infinity }) : undefined;
  lines?.on('line', (line) => {
    tail.push(line);
    if (tail.length > 15) tail.shift();
    opts.onLine?.(line);
  });

  const result = await child;
  if (timer) clearTimeout(timer);
  opts.signal?.removeEventListener('abort', onAbort);
  if (pid !== undefined) live.delete(pid);

  // Only the exec itself failing with ENOENT means the program is missing. Exit
  // code 127 comes from the program (chroot ROOT cmd, sh -c) not finding
  // something of its own, and is reported below as that command's failure.
  const code = (result as { code?: string }).code;
  if (code === 'ENOENT' && result.exitCode === undefined && command.cwd && /"cwd" option is invalid/.test(String((result as { message?: string }).message))) {
    throw new HnError('ECOMMAND', `working directory ${command.cwd} does not exist: ${shown}`);
  }
  if (code === 'ENOENT' && result.exitCode === undefined) {
    const pkg = HOST_TOOL_PACKAGES[command.file];
    throw new HnError('ENOTFOUND', `${command.file} not found${pkg ? ` (install the Debian package ${pkg})` : ''}`);
  }
  if (timedOut) {
    throw new HnError('ETIMEOUT', `timed out after ${Math.round((command.timeoutMs ?? 0) / 1000)} s: ${shown}`, { details: tail });
  }
  if (opts.signal?.aborted) throw new HnError('EABORTED', `stopped (build is stopping): ${shown}`, { details: tail });
  if (result.signal) {
    throw new HnError('ESIGNAL', `killed by ${result.signal}: ${shown}`, { details: tail });
  }
  const exitCode = result.exitCode ?? -1;
  if (exitCode !== 0 && !(opts.okExitCodes ?? []).includes(exitCode)) {
    throw new HnError('ECOMMAND', `exit code ${exitCode}: ${shown}`, { details: tail });
  }
  return { exitCode, stdout: typeof result.stdout === 'string' ? result.stdout : '' };
}

/** A running command whose stdin and stdout the caller streams (zstd in the publish pass). */
export interface PipedCommand {
  stdin: Writable;
  /** Not to be read when the command writes to a descriptor of ours (`stdoutFd`). */
  stdout: Readable;
  /** Settles when the command has exited, with the same failures as run(). */
  finished: Promise<RunResult>;
}

/**
 * Starts a command with piped stdin and stdout, in its own process group and
 * tagged like every other command; stderr lines go to `onLine`. The caller
 * writes stdin, ends it, and reads stdout to the end; or, with `stdoutFd`,
 * the command writes its output to that open descriptor itself.
 */
export function startPiped(command: Command, opts: Omit<RunOptions, 'capture' | 'fd3'> & { stdoutFd?: number } = {}): PipedCommand {
  const shown = formatCommand(command);
  assertDeclared(command);
  if (opts.signal?.aborted) throw new HnError('EABORTED', `not started (build is stopping): ${shown}`);
  const child = execa(command.file, command.args, {
    env: { ...command.env, ...buildTagEnv() },
    extendEnv: command.env === undefined,
    cwd: command.cwd,
    stdin: 'pipe',
    // A descriptor of ours: the command writes there itself, without a pipe through this process.
    // (execa hands any descriptor to spawn; its types list only 1 to 9.)
    stdout: (opts.stdoutFd ?? 'pipe') as 'pipe' | 1,
    stderr: 'pipe',
    reject: false,
    detached: true,
    buffer: false,
  });
  const pid = child.pid;
  if (pid !== undefined) live.add(pid);
  const stop = () => {
    if (pid === undefined) return;
    killGroup(pid, 'SIGTERM');
    setTimeout(() => killGroup(pid, 'SIGKILL'), KILL_GRACE_MS).unref();
  };
  let timedOut = false;
  const timer = command.timeoutMs
    ? setTimeout(() => {
        timedOut = true;
        stop();
      }, command.timeoutMs)
    : undefined;
  timer?.unref();
  opts.signal?.addEventListener('abort', stop, { once: true });
  const tail: string[] = [];
  createInterface({ input: child.stderr!, crlfDelay: Infinity }).on('line', (line) => {
    tail.push(line);
    if (tail.length > 15) tail.shift();
    opts.onLine?.(line);
  });
  // A reader that stops early (EPIPE) is reported through `finished`, not as an unhandled error.
  child.stdin!.on('error', () => undefined);
  const finished = (async (): Promise<RunResult> => {
    const result = await child;
    if (timer) clearTimeout(timer);
    opts.signal?.removeEventListener('abort', stop);
    if (pid !== undefined) live.delete(pid);
    const code = (result as { code?: string }).code;
    if (code === 'ENOENT' && result.exitCode === undefined) {
      const pkg = HOST_TOOL_PACKAGES[command.file];
      throw new HnError('ENOTFOUND', `${command.file} not found${pkg ? ` (install the Debian package ${pkg})` : ''}`);
    }
    if (timedOut) throw new HnError('ETIMEOUT', `timed out after ${Math.round((command.timeoutMs ?? 0) / 1000)} s: ${shown}`, { details: tail });
    if (opts.signal?.aborted) throw new HnError('EABORTED', `stopped (build is stopping): ${shown}`, { details: tail });
    if (result.signal) throw new HnError('ESIGNAL', `killed by ${result.signal}: ${shown}`, { details: tail });
    const exitCode = result.exitCode ?? -1;
    if (exitCode !== 0 && !(opts.okExitCodes ?? []).includes(exitCode)) throw new HnError('ECOMMAND', `exit code ${exitCode}: ${shown}`, { details: tail });
    return { exitCode, stdout: '' };
  })();
  return { stdin: child.stdin!, stdout: child.stdout!, finished };
}
