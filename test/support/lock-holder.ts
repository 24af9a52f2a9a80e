// Takes the build lock in a process of its own, for the lock tests.
// Usage: lock-holder.ts PATH race GO_AT_MS   (prints "won" or "refused"; a winner holds until its stdin closes)
//        lock-holder.ts PATH hold                     (starts `sleep 60`, prints "held <sleep pid>", waits)
import { acquireBuildLock } from '../../pipeline/lock.ts';
import { run } from '../../pipeline/seam/run.ts';

const [path, mode, goAt] = process.argv.slice(2) as [string, 'race' | 'hold', string?];
if (mode === 'race') {
  while (Date.now() < Number(goAt)) { /* spin: every racer starts at the same instant */ }
  try {
    const lock = await acquireBuildLock(path, 'profile race');
    process.stdout.write('won\n');
    // Held until the test has heard from every racer (it closes our stdin then), so a racer
    // whose node started late on a loaded machine still meets a held lock.
    await new Promise((r) => process.stdin.on('end', r).resume());
    await lock.release();
  } catch (e) {
    process.stdout.write(`refused: ${(e as Error).message}\n`);
  }
} else {
  await acquireBuildLock(path, 'profile hold');
  // A command of the build that outlives it: it must not keep the lock (close-on-exec).
  const sleeper = run({ file: 'sh', args: ['-c', 'echo $$; exec sleep 60'], timeoutMs: 120_000 }, {
    onLine: (pid) => process.stdout.write(`held ${pid}\n`),
  });
  await sleeper.catch(() => undefined);
}
