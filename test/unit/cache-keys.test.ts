import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BuildContext } from '../../pipeline/context.ts';
import { hashValue, stableJson } from '../../pipeline/hash.ts';
import { stageKeys } from '../../pipeline/runner.ts';
import type { StageDef } from '../../pipeline/stage.ts';

const stage = (name: string, inputs: unknown, extra: Partial<StageDef> = {}): StageDef => ({
  name, title: name, kind: 'mutate', bases: ['debian'], needsRoot: false, version: 1, inputs: () => inputs, run: async () => {}, ...extra,
});
const ctx = { repoDir: '/src/hnforge', cacheDir: '/var/cache/hnforge', buildDir: '/var/cache/hnforge/build/p', outputDir: '/out/p' } as BuildContext;

describe('cache keys', () => {
  it('same input, same key; key order in objects does not matter', async () => {
    expect(await hashValue({ a: 1, b: [1, 2] })).toBe(await hashValue({ b: [1, 2], a: 1 }));
    expect(stableJson({ b: 1, a: { d: 1, c: 2 } })).toBe('{"a":{"c":2,"d":1},"b":1}');
  });

  it('any input change gives a new key', async () => {
    const base = await hashValue({ packages: ['lxc', 'docker.io'], size: 15 });
    for (const changed of [{ packages: ['lxc'], size: 15 }, { packages: ['docker.io', 'lxc'], size: 15 }, { packages: ['lxc', 'docker.io'], size: 16 }]) {
      expect(await hashValue(changed)).not.toBe(base);
    }
  });

  it('changing one stage changes its key and every key after it, none before', async () => {
    const a = [stage('one', 1), stage('two', 2), stage('three', 3)];
    const b = [stage('one', 1), stage('two', 'changed'), stage('three', 3)];
    const ka = await stageKeys(a, ctx);
    const kb = await stageKeys(b, ctx);
    expect(kb.get('one')).toBe(ka.get('one'));
    expect(kb.get('two')).not.toBe(ka.get('two'));
    expect(kb.get('three')).not.toBe(ka.get('three'));
  });

  it('a stage version bump changes the key', async () => {
    const k1 = await stageKeys([stage('one', 1)], ctx);
    const k2 = await stageKeys([stage('one', 1, { version: 2 })], ctx);
    expect(k2.get('one')).not.toBe(k1.get('one'));
  });

  it('the content of files a stage reads is part of its key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hnkey-'));
    const file = join(dir, 'fragment');
    await writeFile(file, 'CONFIG_LOOP=y\n');
    const s = [stage('kernel', null, { files: () => [file] })];
    const k1 = await stageKeys(s, ctx);
    expect((await stageKeys(s, ctx)).get('kernel')).toBe(k1.get('kernel'));
    await writeFile(file, 'CONFIG_LOOP=m\n');
    expect((await stageKeys(s, ctx)).get('kernel')).not.toBe(k1.get('kernel'));
  });

  it('compute stages have no key (they always run)', async () => {
    const keys = await stageKeys([stage('resolve', 1, { kind: 'compute' }), stage('one', 1)], ctx);
    expect([...keys.keys()]).toEqual(['one']);
  });
});
