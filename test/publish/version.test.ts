import { describe, expect, it } from 'vitest';
import { HnError } from '../../pipeline/errors.ts';
import { checkVersion, compareVersions, dayOf, newestFirst, nextVersion } from '../../pipeline/publish/version.ts';

describe('versions', () => {
  it('orders digit runs as numbers and text runs as text', () => {
    expect(compareVersions('20261202.10', '20261202.9')).toBe(1);
    expect(compareVersions('20261202.1', '20261203.1')).toBe(-1);
    expect(compareVersions('1.0', '1.0')).toBe(0);
    expect(compareVersions('1.0', '1.0.1')).toBe(-1);
    expect(compareVersions('1.0', '1.rc')).toBe(1);
    expect(newestFirst(['20261201.2', '20261202.1', '20261201.10'])).toEqual(['20261202.1', '20261201.10', '20261201.2']);
  });

  it('counts the versions of the UTC day, whatever else is known', () => {
    const noon = new Date('2026-12-02T12:00:00Z');
    expect(dayOf(noon)).toBe('20261202');
    expect(nextVersion([], noon)).toBe('20261202.1');
    expect(nextVersion(['20261202.1', '20261202.3', '20261201.9', 'custom-1', '20261202.x'], noon)).toBe('20261202.4');
    expect(nextVersion(['20261202.1'], new Date('2026-12-02T23:59:59+01:00'))).toBe('20261202.2');
  });

  it('refuses versions that cannot be file names or tags, with one line', () => {
    expect(checkVersion('20261202.1')).toBe('20261202.1');
    expect(checkVersion('1.2.3-rc1+build~x')).toBe('1.2.3-rc1+build~x');
    for (const bad of ['', '../x', 'a/b', 'with space', '_x', 'a_b', 'x'.repeat(65)]) {
      let e: unknown;
      try {
        checkVersion(bad);
      } catch (err) {
        e = err;
      }
      expect(e).toBeInstanceOf(HnError);
      expect((e as HnError).code).toBe('EVERSION');
    }
  });
});
