// `hnforge nightly`: build, boot-test, publish and prune each profile by
// running bin/hnforge itself once per step, so every step is exactly the
// command a human would type to redo it (the summary prints them). A profile
// stops at its first failing step; the next profile still runs; the exit code
// says whether everything passed.
//
// The steps are one table of plain data (nightlySteps); runNightly only runs
// it. Children run through the seam: own process group, a timeout each, output
// streamed line by line (to stderr, prefixed, so --json keeps stdout clean).

import { access, constants } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { HnError, usageError, type InterruptedError } from './errors.ts';
import { resolveProfile } from './profiles.ts';
import { NAME_PATTERN } from './publish/store.ts';
import { STORE_SCHEMES } from './publish/stores.ts';
import { entry } from './seam/catalogue.ts';
import { formatCommand } from './seam/command.ts';
import { untilInterrupted, run } from './seam/run.ts';

const MINUTE = 60_000;

export type StepName = 'build' | 'boot-test' | 'publish' | 'prune';
export const STEP_NAMES: readonly StepName[] = ['build', 'boot-test', 'publish', 'prune'];

/** Hard limits against a hung child, not speed targets (a cold hn-debian build takes ~2 min, a boot ~2 min). */
const STEP_TIMEOUT_MS: Record<StepName, number> = {
  build: 240 * MINUTE,
  'boot-test': 60 * MINUTE,
  publish: 120 * MINUTE,
  prune: 30 * MINUTE,
};

export interface NightlyOptions {
  profiles: string[];
  store: string;
  channel: string;
  keep: number;
  signingKey?: string;
  /** Build output directory (the image is <output>/<profile>/hn-root.img). */
  output: string;
  /** Build cache, passed on only when given (the build has its own default). */
  cache?: string;
  /** boot-test's own --timeout, passed on only when given. */
  bootTimeoutSec?: number;
  /** bin/hnforge, run once per step. */
  bin: string;
}

export interface Step {
  profile: string;
  name: StepName;
  argv: string[];
  timeoutMs: number;
}

/** The steps of one profile, in order. Plain data: the dry run prints them, the run runs them. */
export function nightlySteps(profile: string, o: NightlyOptions): Step[] {
  const image = join(resolve(o.output), profile, 'hn-root.img');
  const signing = o.signingKey ? ['--signing-key', resolve(o.signingKey)] : [];
  const steps: [StepName, string[]][] = [
    // The store names the next version and the key is baked into the image; publishing waits for boot-test.
    ['build', ['build', '--profile', profile, '--output', resolve(o.output), ...(o.cache ? ['--cache', resolve(o.cache)] : []), '--store', o.store, '--no-publish', ...signing]],
    ['boot-test', ['boot-test', '--image', image, ...(o.bootTimeoutSec ? ['--timeout', String(o.bootTimeoutSec)] : [])]],
    ['publish', ['publish', '--image', image, '--store', o.store, '--channel', o.channel, ...signing]],
    ['prune', ['prune', '--keep', String(o.keep), '--store', o.store, '--profile', profile]],
  ];
  return steps.map(([name, argv]) => ({ profile, name, argv, timeoutMs: STEP_TIMEOUT_MS[name] }));
}

// bin/hnforge is run by its path: nothing to install on the host for it.
const hnforgeStep = entry([], (bin: string, step: Step) => ({ file: bin, args: step.argv, timeoutMs: step.timeoutMs }));

/** A step as a shell command line (what the dry run and the summary show). */
export const stepCommand = (bin: string, step: Step) => formatCommand(hnforgeStep(bin, step));

export type StepStatus = 'ok' | 'failed' | 'skipped' | 'planned';

export interface StepResult {
  step: StepName;
  command: string;
  status: StepStatus;
  exitCode?: number;
  seconds?: number;
  /** The child's own error line ("hnforge: error: ..."), else its last line. */
  error?: string;
}

export interface ProfileResult {
  profile: string;
  ok: boolean;
  steps: StepResult[];
}

export interface NightlyResult {
  ok: boolean;
  dryRun: boolean;
  profiles: ProfileResult[];
  /** The signal that stopped the run (the step running then got SIGTERM, the rest were skipped). */
  interrupted?: string;
}

/** Mistakes a user can make on the command line, all reported at once before anything runs. */
export async function checkNightlyOptions(o: NightlyOptions, profilesDir: string): Promise<void> {
  const problems: string[] = [];
  if (!o.profiles.length) problems.push('name at least one --profile');
  for (const p of o.profiles) {
    if (!/^[\w.-]+$/.test(p)) problems.push(`--profile ${p}: a profile name, not a path`);
    else await resolveProfile(profilesDir, p).catch((e: unknown) => problems.push(e instanceof Error ? e.message : String(e)));
  }
  if (new Set(o.profiles).size !== o.profiles.length) problems.push(`a --profile is named twice (${o.profiles.join(', ')})`);
  const scheme = /^([a-z0-9]+):\/\//.exec(o.store)?.[1];
  if (!isAbsolute(o.store) && !(STORE_SCHEMES as readonly string[]).includes(scheme ?? '')) {
    problems.push(`--store ${o.store}: use file:///path, s3://bucket/prefix or oci://host[:port]/repository`);
  }
  if (!Number.isInteger(o.keep) || o.keep < 1) problems.push(`--keep ${o.keep}: a whole number of versions to keep, at least 1`);
  if (!NAME_PATTERN.test(o.channel)) problems.push(`--channel ${o.channel}: use lower-case letters, digits, ".", "_" and "-" (at most 64, starting with a letter or digit)`);
  if (o.signingKey) await access(o.signingKey, constants.R_OK).catch(() => problems.push(`--signing-key ${o.signingKey}: cannot read this file (make one with: hnforge keygen --out DIR)`));
  if (problems.length === 1) throw usageError(problems[0]!);
  if (problems.length) throw new HnError('EUSAGE', `${problems.length} problems with the nightly options: ${problems.join('; ')}`, { details: problems });
}

/** The plan without running anything. */
export function planNightly(o: NightlyOptions): NightlyResult {
  return {
    ok: true,
    dryRun: true,
    profiles: o.profiles.map((profile) => ({
      profile,
      ok: true,
      steps: nightlySteps(profile, o).map((s) => ({ step: s.name, command: stepCommand(o.bin, s), status: 'planned' as const })),
    })),
  };
}

export async function runNightly(o: NightlyOptions, say: (line: string) => void): Promise<NightlyResult> {
  // Ctrl-C or SIGTERM ends the running step (a build unwinds and releases its mounts); the rest are skipped.
  return untilInterrupted(async (signal) => {
    const interruptedBy = () => (signal.aborted ? (signal.reason as InterruptedError).signal : undefined);
    const profiles: ProfileResult[] = [];
    for (const profile of o.profiles) {
      const steps: StepResult[] = [];
      let failed = false;
      for (const step of nightlySteps(profile, o)) {
        const command = stepCommand(o.bin, step);
        if (failed || interruptedBy()) {
          steps.push({ step: step.name, command, status: 'skipped' });
          continue;
        }
        say(`${profile}: ${step.name}: ${command}`);
        const t0 = Date.now();
        const tail: string[] = [];
        let errorLine: string | undefined;
        let exitCode: number | undefined;
        let error: string | undefined;
        try {
          // Every exit status is an answer here: the summary reports it, the next profile still runs.
          const r = await run(hnforgeStep(o.bin, step), {
            okExitCodes: Array.from({ length: 255 }, (_, i) => i + 1),
            onLine: (line) => {
              process.stderr.write(`[${profile} ${step.name}] ${line}\n`);
              if (/^hnforge: (error|internal error)/.test(line)) errorLine = line.replace(/^hnforge: (error: )?/, '');
              tail.push(line);
              if (tail.length > 5) tail.shift();
            },
          });
          exitCode = r.exitCode;
        } catch (e) {
          // Not started, killed by a signal or past its timeout: no exit status of its own.
          error = e instanceof Error ? e.message : String(e);
        }
        const seconds = Math.round((Date.now() - t0) / 100) / 10;
        if (exitCode === 0) {
          steps.push({ step: step.name, command, status: 'ok', exitCode, seconds });
        } else {
          failed = true;
          const why = error ?? errorLine ?? tail.at(-1) ?? 'no output';
          steps.push({ step: step.name, command, status: 'failed', ...(exitCode !== undefined ? { exitCode } : {}), seconds, error: why });
          say(`${profile}: ${step.name} failed${exitCode !== undefined ? ` (exit ${exitCode})` : ''}: ${why}`);
        }
      }
      profiles.push({ profile, ok: !failed && !interruptedBy(), steps });
    }
    const interrupted = interruptedBy();
    return { ok: profiles.every((p) => p.ok), dryRun: false, profiles, ...(interrupted ? { interrupted } : {}) };
  });
}

/** The dry run: the commands, one per line, in the order they would run. */
export function formatPlan(r: NightlyResult): string {
  return r.profiles.flatMap((p) => [`# ${p.profile}`, ...p.steps.map((s) => s.command)]).join('\n') + '\n';
}

/** The summary table: one row per profile, one column per step; then each failure and how to rerun it. */
export function formatSummary(r: NightlyResult): string {
  const cell = (s: StepResult | undefined) => {
    if (!s) return '-';
    if (s.status === 'ok') return `ok ${s.seconds}s`;
    if (s.status === 'failed') return `FAILED${s.exitCode !== undefined ? ` (exit ${s.exitCode})` : ''}`;
    return s.status;
  };
  const header = ['profile', ...STEP_NAMES, 'result'];
  const rows = r.profiles.map((p) => [p.profile, ...STEP_NAMES.map((n) => cell(p.steps.find((s) => s.step === n))), p.ok ? 'ok' : 'FAILED']);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const out = [line(header), ...rows.map(line)];
  for (const p of r.profiles) {
    for (const s of p.steps) {
      if (s.status === 'failed') out.push(`  ${p.profile} ${s.step}: ${s.error}\n    rerun: ${s.command}`);
    }
  }
  return out.join('\n') + '\n';
}
