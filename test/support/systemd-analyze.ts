// `systemd-analyze verify` on unit texts, for the tests of every unit the
// project ships. verify exits 0 on unknown keys and values it ignores, so any
// output counts as a finding.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export const SYSTEMD_ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));

/**
 * Findings for unit texts (name -> text), written into a fresh directory under
 * `scratch`: verify's output, plus its exit status if not 0. `rewrite` adapts a
 * text first (verify checks that ExecStart's program exists on this machine).
 */
export async function verifyUnits(scratch: string, files: Record<string, string>, rewrite: (text: string) => string = (t) => t): Promise<string[]> {
  const sub = await mkdtemp(join(scratch, 'units-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(sub, name), rewrite(text));
  const r = await exec(SYSTEMD_ANALYZE!, ['verify', ...Object.keys(files).map((n) => join(sub, n))], { timeout: 60_000 }).then(
    (ok) => ({ ...ok, code: 0 }),
    (e: { stdout: string; stderr: string; code: number }) => e,
  );
  const findings = `${r.stdout}${r.stderr}`.split('\n').filter(Boolean);
  return r.code ? [...findings, `exit status ${r.code}`] : findings;
}
