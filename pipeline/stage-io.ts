// Per-stage I/O: a log file of its own, commands run through the seam with
// their output appended to it, and a progress line for the display.

import { createWriteStream, type WriteStream } from 'node:fs';
import type { StageIO } from './stage.ts';
import { formatCommand } from './seam/command.ts';
import { run } from './seam/run.ts';

export function openStageIO(logFile: string, signal: AbortSignal, onProgress: (text: string) => void): StageIO & { close(): Promise<void> } {
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
      return run(command, {
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
