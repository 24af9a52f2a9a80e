import { cp, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HnError } from '../../pipeline/errors.ts';
import { listProfiles, mergeProfiles, resolveProfile } from '../../pipeline/profiles.ts';

const repoProfiles = join(import.meta.dirname, '../../profiles');

async function withProfiles(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hnprof-'));
  await cp(repoProfiles, dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, `${name}.yaml`), text);
  return dir;
}

async function errorOf(p: Promise<unknown>): Promise<HnError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HnError) return e;
    throw e;
  }
  throw new Error('expected an HnError');
}

describe('profiles', () => {
  it('hn-debian inherits the node layout and accumulates packages along the chain', async () => {
    const p = await resolveProfile(repoProfiles, 'hn-debian');
    expect(p.base).toBe('debian');
    expect(p.image).toEqual({ sizeGiB: 15, filesystem: 'ext4', label: 'hn-root', fileName: 'hn-root.img' });
    expect(p.layout.directories).toEqual(['/hostpart', '/boot/loader', '/warehouse']);
    expect(p.packages).toEqual(expect.arrayContaining(['linux-image-amd64', 'systemd', 'lxc', 'docker.io', 'qemu-system-x86', 'openssh-server']));
  });

  it('a child overrides one nested key and keeps its siblings', async () => {
    const p = await resolveProfile(repoProfiles, 'test-min');
    expect(p.image.sizeGiB).toBe(2);
    expect(p.image.filesystem).toBe('ext4');
    expect(p.packages).not.toContain('docker.io');
  });

  it('merge: objects deep, arrays replaced, packages accumulated without duplicates', () => {
    const m = mergeProfiles({ a: { x: 1, y: [1] }, packages: ['p', 'q'] }, { a: { y: [2] }, packages: ['q', 'r'] });
    expect(m).toEqual({ a: { x: 1, y: [2] }, packages: ['p', 'q', 'r'] });
  });

  it('unknown keys are errors naming the file and the key', async () => {
    const dir = await withProfiles({ bad: 'name: bad\nextends: hn-debian\ndescription: x\nimage:\n  sizeGib: 3\n' });
    const e = await errorOf(resolveProfile(dir, 'bad'));
    expect(e.code).toBe('EPROFILE');
    expect(e.message).toContain('profiles/bad.yaml: image.sizeGib: unknown key');
    expect(e.exitCode).toBe(3);
  });

  it('wrong types and values are errors with their path', async () => {
    const dir = await withProfiles({ bad: 'name: bad\nextends: hn-debian\ndescription: x\nimage:\n  filesystem: xfs\n' });
    expect((await errorOf(resolveProfile(dir, 'bad'))).message).toMatch(/profiles\/bad\.yaml: image\.filesystem: .*ext4.*btrfs/);
  });

  it('unknown profile, unknown parent, cycles, bad YAML and abstract bases are refused', async () => {
    const dir = await withProfiles({
      orphan: 'name: orphan\nextends: nowhere\ndescription: x\n',
      loop1: 'name: loop1\nextends: loop2\ndescription: x\n',
      loop2: 'name: loop2\nextends: loop1\ndescription: x\n',
      broken: 'name: broken\n  description: [\n',
      misnamed: 'name: other\ndescription: x\n',
    });
    expect((await errorOf(resolveProfile(dir, 'nope'))).message).toContain("unknown profile 'nope'");
    expect((await errorOf(resolveProfile(dir, 'orphan'))).message).toContain("unknown profile 'nowhere'");
    expect((await errorOf(resolveProfile(dir, 'loop1'))).message).toContain('inheritance cycle loop1 -> loop2 -> loop1');
    expect((await errorOf(resolveProfile(dir, 'broken'))).message).toContain('not valid YAML');
    expect((await errorOf(resolveProfile(dir, 'misnamed'))).message).toContain("'name' must be 'misnamed'");
    expect((await errorOf(resolveProfile(dir, 'debian-base'))).message).toContain('abstract');
    expect((await errorOf(resolveProfile(dir, '../etc/passwd'))).message).toContain('invalid profile name');
  });

  it('lists every profile with its description', async () => {
    const names = (await listProfiles(repoProfiles)).map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['hn-debian', 'test-min', 'node-base']));
  });
});
