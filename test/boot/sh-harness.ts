// Runs boot/hn-boot.sh under a real POSIX shell (busybox ash, or dash) against a
// temporary directory that stands in for the host partition. The actions that
// would touch the machine (power cut, reboot, poweroff) are replaced by
// functions that print a marker and exit with a known code, so a test sees
// exactly where the logic stopped and can run the next "boot" on the state
// that was left behind.

import { createHash } from 'node:crypto';
import { afterEach } from 'vitest';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync, mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { run } from '../../pipeline/seam/run.ts';

export const REPO = resolve(import.meta.dirname, '../..');
export const HN_BOOT_SH = join(REPO, 'boot/hn-boot.sh');

export type Outcome = 'boot' | 'reboot' | 'powercut' | 'poweroff' | 'error';
const CODES: Record<number, Outcome> = { 0: 'boot', 98: 'reboot', 99: 'powercut', 97: 'poweroff' };

export interface ShellRun {
  outcome: Outcome;
  exitCode: number;
  lines: string[];
}

export const SHELLS: { name: string; argv: string[] }[] = [
  { name: 'busybox ash', argv: ['/bin/busybox', 'sh'] },
  ...(existsSync('/usr/bin/dash') ? [{ name: 'dash', argv: ['/usr/bin/dash'] }] : []),
];

/** One "boot" of the rotation logic on directory `hp`. */
export async function runRotation(
  hp: string,
  opts: { stopAfter?: number; realRoot?: string; shell?: string[]; verify?: string; body?: string } = {},
): Promise<ShellRun> {
  const shell = opts.shell ?? SHELLS[0]!.argv;
  const script = [
    `. '${HN_BOOT_SH}'`,
    'hn_powercut() { echo "@@POWERCUT"; exit 99; }',
    'hn_reboot() { echo "@@REBOOT"; exit 98; }',
    'hn_poweroff() { echo "@@POWEROFF"; exit 97; }',
    'sleep() { :; }',
    opts.body ?? 'hn_rotate || exit 1\necho "@@BOOT $HN_REAL_ROOT"',
  ].join('\n');
  const lines: string[] = [];
  const env: Record<string, string> = {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    HN_HP: hp,
    HN_CMDLINE_FILE: '/nonexistent',
    // Never the host's: a reboot that "returns" ends in hn_hard_stop, which would write b there.
    HN_SYSRQ: '/dev/null',
    ...(opts.stopAfter !== undefined ? { HN_STOP_AFTER: String(opts.stopAfter) } : {}),
    ...(opts.realRoot ? { HN_REAL_ROOT: opts.realRoot } : {}),
    ...(opts.verify ? { HN_VERIFY: opts.verify } : {}),
  };
  const { exitCode } = await run(
    { file: shell[0]!, args: [...shell.slice(1), '-c', script], env, timeoutMs: 20_000 },
    { onLine: (l) => lines.push(l), okExitCodes: [0, 1, 97, 98, 99] },
  );
  return { outcome: CODES[exitCode] ?? 'error', exitCode, lines };
}

/** Boots until the logic says "boot this image" (at most `max` runs); returns every run. */
export async function bootUntilSettled(hp: string, opts: Parameters<typeof runRotation>[1] = {}, max = 4): Promise<ShellRun[]> {
  const runs: ShellRun[] = [];
  for (let i = 0; i < max; i++) {
    const r = await runRotation(hp, { ...opts, stopAfter: undefined });
    runs.push(r);
    if (r.outcome !== 'reboot') return runs;
  }
  throw new Error(`rotation did not settle after ${max} boots:\n${runs.map((r) => r.lines.join('\n')).join('\n---\n')}`);
}

export function sidecarText(content: Buffer | string, extra: Record<string, string> = {}): string {
  const buf = Buffer.isBuffer(content) ? content : Buffer.from(content);
  const lines = [
    'format=hnforge-sidecar-1',
    `size=${buf.length}`,
    `sha256=${createHash('sha256').update(buf).digest('hex')}`,
    ...Object.entries(extra).map(([k, v]) => `${k}=${v}`),
  ];
  return lines.join('\n') + '\n';
}

export function makeHostpart(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'hn-boot-unit-'));
  mkdirSync(join(dir, 'data'));
  writeFileSync(join(dir, 'data/precious'), 'user data\n');
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

export function removeDir(dir: string) {
  rmSync(dir, { recursive: true, force: true });
}

/** For one test file: temporary directories, each removed after the test that made it. */
export function tempDirsPerTest(prefix: string): () => string {
  const dirs: string[] = [];
  afterEach(() => {
    while (dirs.length) removeDir(dirs.pop()!);
  });
  return () => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
}

/** For one test file: makeHostpart, each host partition removed after the test that made it. */
export function hostpartsPerTest(): (files: Record<string, string>) => string {
  const dirs: string[] = [];
  afterEach(() => {
    while (dirs.length) removeDir(dirs.pop()!);
  });
  return (files) => {
    const dir = makeHostpart(files);
    dirs.push(dir);
    return dir;
  };
}

/** name -> content for every regular file at the top of `dir` (plus inode, to see hard links). */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isFile()) out[name] = readFileSync(p, 'utf8');
  }
  return out;
}

export function inode(path: string): number {
  return statSync(path).ino;
}
