// What a stage is. The table of stages lives in pipeline/stages-table.ts; the
// behaviour lives in stages/<name>.ts.

import type { BuildContext, FactName } from './context.ts';
import type { CatalogueEntry } from './seam/catalogue.ts';
import type { Command } from './seam/command.ts';
import type { RunOptions, RunResult } from './seam/run.ts';

/**
 * compute: no effect on the image, cheap, always runs (also in --dry-run); fills the context.
 * mutate:  changes the image; its cache key chains the keys before it.
 * attach:  acquires resources (loop, mounts, chroot); runs whenever a later stage has work to do.
 * finish:  the last mutate stage; its key names the finished image in the cache.
 */
export type StageKind = 'compute' | 'mutate' | 'attach' | 'finish';

export interface StageIO {
  /** Runs a command through the seam; output goes to this stage's log. */
  run(command: Command, opts?: Omit<RunOptions, 'signal' | 'onLine'> & { onLine?: (line: string) => void }): Promise<RunResult>;
  log(line: string): void;
  /** One short line for the progress display ("package 12 of 218"). */
  progress(text: string): void;
  readonly signal: AbortSignal;
  readonly logFile: string;
}

export interface StageDef {
  name: string;
  title: string;
  kind: StageKind;
  /** Which bases use this stage. */
  bases: ReadonlyArray<'debian' | 'gentoo'>;
  needsRoot: boolean;
  /** Bump when the stage's behaviour changes, so old cache entries stop matching. */
  version: number;
  /**
   * The catalogue entries (cmd.mount, bootCmd.cpioCreate, ...) of every command
   * the stage runs, also through helpers (mountOn) and releases it triggers.
   * The build's host tools are derived from these (pipeline/host-tools.ts), and
   * a command whose program is not declared here is refused while the stage runs.
   */
  commands?: ReadonlyArray<CatalogueEntry>;
  /** Snapshot the image after this stage so a later change resumes here. */
  checkpoint?: boolean;
  /** A failure here does not stop the build under --keep-going (nothing later needs its output). */
  optional?: boolean;
  /** Everything that decides this stage's result, as plain data (profile fragment, resolved values). */
  inputs?(ctx: BuildContext): unknown;
  /** Files whose content this stage reads (hashed into its key). */
  files?(ctx: BuildContext): string[];
  /** Facts (pipeline/context.ts) earlier stages must have provided; checked when the table is loaded. */
  needs?: readonly FactName[];
  /** Facts this stage sets; checked after it runs; the cached ones are restored when it is skipped. */
  provides?: readonly FactName[];
  /** Human-readable commands a dry run prints instead of running the stage. */
  plan?(ctx: BuildContext): string[];
  run(ctx: BuildContext, io: StageIO): Promise<Partial<BuildContext> | void>;
}
