// Per-stage I/O: a log file of its own, commands run through the seam with
// their output appended to it, and a progress line for the display. Opened
// for a stage, its run refuses a command whose program the stage did not
// declare (pipeline/seam/declared.ts).

import { createWriteStream, type WriteStream } from 'node:fs';
import type { StageDef, StageIO } from './stage.ts';
import { formatCommand } from './seam/command.ts';
import { withDeclaredCommands } from './seam/declared.ts';
import { run } from './seam/run.ts';

/** Runs `fn` (a stage's body) so that every command it starts must be one the stage declared. */
export function asStage<T>(stage: Pick<StageDef, 'name' | 'commands'>, fn: () => T): T {
  return withDeclaredCommands(`stage ${stage.name}`, stage.commands ?? [], fn);
}

export function openStageIO(
  logFile: string,
  signal: AbortSignal,
  onProgress: (text: string) => void,
  stage?: Pick<StageDef, 'name' | 'commands'>,
): StageIO & { close(): Promise<void> } {
  const seamRun: typeof run = (command, opts) => (stage ? asStage(stage, () => run(command, opts)) : run(command, opts));
  const out: WriteStream = createWriteStream(logFile, { flags: 'a' });
  const log = (line: string) => out.write(`${new Date().toISOString()} ${line}\n`);
  let lastProgress = '';
  return {
    logFile,
    signal,
    log,
    progress: (text) => {
      if (text === lastProgress) return;
      lastProgress = text;
      log(`# ${text}`);
      onProgress(text);
    },
    run: (command, opts = {}) => {
      log(`$ ${formatCommand(command)}`);
      return seamRun(command, {
        ...opts,
        signal,
        onLine: (line) => {
          log(line);
          opts.onLine?.(line);
        },
      });
    },
    close: () => new Promise((resolve) => out.end(resolve)),
  };
}
