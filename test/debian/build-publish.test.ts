// The build's last step when a store is named: `hnforge build --store`
// publishes the finished image exactly as `hnforge publish` would, signed with
// the key whose public half the build baked into the image; a second build of
// the same inputs finds its version already published and changes nothing.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_FILES, keygen } from '../../pipeline/publish/keygen.ts';
import { versionFiles } from '../../pipeline/publish/store.ts';
import { hnforge } from '../support/cli.ts';
import { TEST_CACHE } from '../support/test-cache.ts';

describe('[root] hnforge build --store', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'hnbuild-publish-'));
    await keygen({ out: join(work, 'keys') });
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('publishes the built image into the channel, verifiable with the baked key; a rebuild is already published', async () => {
    const store = `file://${join(work, 'store')}`;
    const args = ['build', '--profile', 'test-min', '--cache', TEST_CACHE, '--output', join(work, 'out'), '--store', store, '--channel', 'testing', '--signing-key', join(work, 'keys', KEY_FILES.privateKey), '--json'];
    const first = await hnforge(args, { timeoutMs: 900_000 });
    expect(first.code, first.stderr.slice(-2000)).toBe(0);
    const result = JSON.parse(first.stdout) as { version: { version: string }; published: { version: string; channel: string; alreadyPublished: boolean; signedBy?: string } };
    expect(result.published).toMatchObject({ version: result.version.version, channel: 'testing', alreadyPublished: false });
    expect(result.published.signedBy).toMatch(/^[0-9A-F]{40}$/);
    expect(await readdir(join(work, 'store', 'test-min', 'testing'))).toEqual(expect.arrayContaining(['SHA256SUMS', 'SHA256SUMS.gpg', versionFiles(result.version.version).artifact]));

    const verified = await hnforge(['verify', '--store', store, '--profile', 'test-min', '--channel', 'testing', '--keyring', join(work, 'keys', KEY_FILES.keyring)], { timeoutMs: 600_000 });
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toContain(`verified test-min/testing ${result.version.version}`);

    const again = await hnforge(args, { timeoutMs: 900_000 });
    expect(again.code, again.stderr.slice(-2000)).toBe(0);
    expect(JSON.parse(again.stdout).published).toMatchObject({ version: result.version.version, alreadyPublished: true });
  });
});
