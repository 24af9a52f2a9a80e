// The error catalogue is the one home of codes and exit statuses: every code
// thrown anywhere is in it (the compiler checks the type; this checks the text
// of throwers the compiler cannot see, e.g. strings built at run time), and
// its exit statuses are the documented ones.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERRORS, EXIT, HnError } from '../../pipeline/errors.ts';

const repo = join(import.meta.dirname, '../..');

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(repo, dir), { withFileTypes: true })) {
    const rel = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(rel)));
    else if (e.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

describe('error catalogue', () => {
  it('every code named in the code base is in the catalogue', async () => {
    const named = new Set<string>();
    for (const file of [...(await sources('pipeline')), ...(await sources('stages'))]) {
      const text = await readFile(join(repo, file), 'utf8');
      for (const m of text.matchAll(/(?:HnError|gentooError)\(\s*'(E[A-Z0-9_]+)'/g)) named.add(m[1]!);
    }
    expect(named.size).toBeGreaterThan(20);
    expect([...named].filter((c) => !(c in ERRORS))).toEqual([]);
  });

  it('exit statuses come from the catalogue', () => {
    expect(new HnError('EUSAGE', 'x').exitCode).toBe(EXIT.usage);
    expect(new HnError('EPROFILE', 'x').exitCode).toBe(EXIT.preflight);
    expect(new HnError('ECOMMAND', 'x').exitCode).toBe(EXIT.buildFailed);
    expect(new HnError('EINTERRUPTED', 'x').exitCode).toBe(EXIT.interrupted);
    const statuses = new Set(Object.values(ERRORS).map((e) => e.exit));
    expect([...statuses].every((s) => (Object.values(EXIT) as number[]).includes(s) && s !== EXIT.ok && s !== EXIT.internal)).toBe(true);
  });
});
