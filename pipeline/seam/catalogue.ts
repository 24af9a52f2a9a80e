// A catalogue entry is a function that builds a command line, carrying the
// host programs that command line runs. Stages declare the entries they use;
// the host tools a build needs, the packages installed for it and the check
// that refuses an undeclared command are all derived from these declarations,
// so no list of tool names is ever written by hand.

import type { Command } from './command.ts';

// An entry may take any arguments; only what it returns matters here.
export type CommandBuilder = (...args: any[]) => Command | Command[];

export type CatalogueEntry<F extends CommandBuilder = CommandBuilder> = F & {
  /**
   * Programs looked up on the host's PATH when the command runs: usually just
   * `file`; a shell pipeline names what it execs too (sh + xz). An entry that
   * runs a file by absolute path (the image's own busybox) names none.
   */
  readonly programs: readonly string[];
};

export function entry<F extends CommandBuilder>(programs: string | readonly string[], build: F): CatalogueEntry<F> {
  return Object.assign(build, { programs: typeof programs === 'string' ? [programs] : [...programs] });
}

/** The programs of some entries, each once, sorted. */
export function programsOf(entries: Iterable<CatalogueEntry>): string[] {
  return [...new Set([...entries].flatMap((e) => e.programs))].sort();
}

/**
 * The host program a command looks up on PATH, or undefined when it runs a
 * file named by its path (nothing to install for it on the host).
 */
export function programOf(command: Command): string | undefined {
  return command.file.includes('/') ? undefined : command.file;
}
