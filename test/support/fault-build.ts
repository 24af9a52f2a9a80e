// Runs the engine on the test pipeline in a process of its own, so a test can
// interrupt it with a real SIGINT. Usage: fault-build.ts FAULT CACHE OUTPUT
import { join } from 'node:path';
import { isHnError } from '../../pipeline/errors.ts';
import { build } from '../../pipeline/runner.ts';
import { engineStages, type Fault } from './engine-stages.ts';

const [fault, cacheDir, outputDir] = process.argv.slice(2) as [Fault, string, string];
const runs: string[] = [];
try {
  const result = await build({
    profile: 'test-min', repoDir: join(import.meta.dirname, '../..'), cacheDir, outputDir,
    stages: engineStages(fault, runs), progress: 'plain',
  });
  process.stdout.write(JSON.stringify({ ok: result.ok, runs, stages: result.stages }) + '\n');
} catch (e) {
  process.stderr.write(`error: ${(e as Error).message}\n`);
  process.exitCode = isHnError(e) ? e.exitCode : 70;
}
