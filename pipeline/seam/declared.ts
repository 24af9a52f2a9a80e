// Which host programs the code running now may start. A stage runs inside the
// scope of the catalogue entries it declares (pipeline/stage.ts `commands`);
// the seam refuses any command whose program is not among them, before
// starting it. An undeclared program is a bug in the stage's declaration: the
// host-tool list derived from the declarations would miss it, and a fresh
// machine would find out a minute into a build. Refusing it in every real
// build makes every build test catch it.

import { AsyncLocalStorage } from 'node:async_hooks';
import { type CatalogueEntry, programOf, programsOf } from './catalogue.ts';
import { type Command, formatCommand } from './command.ts';

interface Declaration {
  owner: string;
  programs: ReadonlySet<string>;
}

const current = new AsyncLocalStorage<Declaration>();

/** Not an HnError: the user cannot fix it, the stage's declaration must change (exit 70). */
export class UndeclaredCommandError extends Error {
  constructor(owner: string, program: string, command: Command) {
    super(`${owner} ran '${program}' without declaring it (${formatCommand(command)}): add the catalogue entry that builds this command to the stage's commands`);
    this.name = 'UndeclaredCommandError';
  }
}

/** Runs `fn` so that only the programs of `entries` may be started from it (also from helpers it calls). */
export function withDeclaredCommands<T>(owner: string, entries: Iterable<CatalogueEntry>, fn: () => T): T {
  return current.run({ owner, programs: new Set(programsOf(entries)) }, fn);
}

/** Throws when a declaration is in force and does not name the command's program. */
export function assertDeclared(command: Command): void {
  const declaration = current.getStore();
  const program = programOf(command);
  if (!declaration || program === undefined || declaration.programs.has(program)) return;
  throw new UndeclaredCommandError(declaration.owner, program, command);
}
