// How the build shows progress: listr2's live tree in a terminal, plain
// timestamped lines otherwise (CI logs), nothing at all with --json.

import { Listr, PRESET_TIMESTAMP } from 'listr2';

export interface Step {
  title: string;
  /** Set when the step will not run; the text says why ("cached"). */
  skipReason?: string;
  run(progress: (text: string) => void): Promise<void>;
}

export type ProgressMode = 'tty' | 'plain' | 'silent';

export function progressMode(json: boolean): ProgressMode {
  if (json) return 'silent';
  return process.stderr.isTTY && !process.env.CI ? 'tty' : 'plain';
}

export async function runSteps(steps: Step[], mode: ProgressMode): Promise<void> {
  if (mode === 'plain' || mode === 'silent') {
    const say = (line: string) => mode === 'plain' && process.stderr.write(`${new Date().toISOString()} ${line}\n`);
    for (const step of steps) {
      if (step.skipReason) {
        say(`- ${step.title}: ${step.skipReason}`);
        continue;
      }
      say(`> ${step.title}`);
      const t0 = Date.now();
      let last = 0;
      try {
        await step.run((text) => {
          // Throttled: a progress line at most every 5 s keeps CI logs readable.
          if (Date.now() - last > 5000) {
            last = Date.now();
            say(`  ${step.title}: ${text}`);
          }
        });
      } catch (e) {
        say(`x ${step.title} failed after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        throw e;
      }
      say(`✓ ${step.title} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    }
    return;
  }
  const list = new Listr(
    steps.map((step) => ({
      title: step.title,
      skip: () => step.skipReason ?? false,
      task: async (_ctx: unknown, task: { output: string }) => step.run((text) => (task.output = text)),
    })),
    {
      concurrent: false,
      exitOnError: true,
      registerSignalListeners: false,
      renderer: 'default',
      fallbackRenderer: 'simple',
      fallbackRendererOptions: { timestamp: PRESET_TIMESTAMP },
      rendererOptions: { collapseSubtasks: false, showErrorMessage: false },
    },
  );
  await list.run();
}
