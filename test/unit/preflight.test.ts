import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HnError } from '../../pipeline/errors.ts';
import { preflight } from '../../pipeline/preflight.ts';
import { resolveProfile } from '../../pipeline/profiles.ts';
import { entry } from '../../pipeline/seam/catalogue.ts';
import type { StageDef } from '../../pipeline/stage.ts';

const profiles = join(import.meta.dirname, '../../profiles');
const running = (tools: string[]) => entry(tools, () => ({ file: tools[0]!, args: [] }));
const stage = (tools: string[]): StageDef => ({ name: 's', title: 's', kind: 'mutate', bases: ['debian'], needsRoot: true, version: 1, commands: [running(tools)], run: async () => {} });

describe('preflight', () => {
  it('reports every problem at once: not root, each missing tool with its package, too little disk', async () => {
    const profile = await resolveProfile(profiles, 'hn-debian');
    const huge = { ...profile, image: { ...profile.image, sizeGiB: 1000 } };
    const cacheDir = await mkdtemp(join(tmpdir(), 'hnpre-'));
    let err: HnError | undefined;
    try {
      await preflight({ profile: huge, stages: [stage(['mmdebstrap', 'hnforge-no-such-tool', 'sgdisk-nope'])], cacheDir, isRoot: false });
    } catch (e) {
      err = e as HnError;
    }
    expect(err).toBeInstanceOf(HnError);
    expect(err!.exitCode).toBe(3);
    expect(err!.details).toHaveLength(4);
    expect(err!.details[0]).toMatch(/^not running as root/);
    expect(err!.details[1]).toBe("host tool 'hnforge-no-such-tool' is missing: apt-get install (unknown package)");
    expect(err!.details[3]).toMatch(/GiB free under .*the build needs 300 GiB/);
    expect(err!.message).toContain('4 problems before building');
  });

  it('passes when everything is there', async () => {
    const profile = await resolveProfile(profiles, 'test-min');
    await expect(preflight({ profile, stages: [stage(['sh', 'cp'])], cacheDir: tmpdir(), isRoot: true })).resolves.toBeUndefined();
  });
});
