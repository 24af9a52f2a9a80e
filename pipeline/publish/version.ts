// Image versions: `YYYYMMDD.N` by default (N counts the profile's versions of
// that UTC day in the store, from 1), or any version given with --version.
// Versions are ordered the way systemd-sysupdate and dpkg-like tools order
// them: runs of digits compare as numbers, other runs as text, so
// 20261202.10 is newer than 20261202.9.

import { HnError } from '../errors.ts';

/** Letters, digits and . + ~ - (a file name and an OCI tag alike); starts with a letter or digit. */
const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9.+~-]{0,63}$/;

export function checkVersion(version: string): string {
  if (!VERSION_PATTERN.test(version)) {
    throw new HnError('EVERSION', `version ${JSON.stringify(version)} is not valid: use letters, digits, ".", "+", "~" and "-" (at most 64), starting with a letter or digit, e.g. 20261202.1`);
  }
  return version;
}

/** <0 when a is older than b, 0 when equal, >0 when newer. */
export function compareVersions(a: string, b: string): number {
  const runs = (v: string) => v.match(/\d+|[A-Za-z]+|[^A-Za-z0-9]/g) ?? [];
  const ra = runs(a);
  const rb = runs(b);
  for (let i = 0; i < Math.max(ra.length, rb.length); i++) {
    const x = ra[i];
    const y = rb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const xd = /^\d/.test(x);
    const yd = /^\d/.test(y);
    if (xd && yd) {
      const d = BigInt(x) - BigInt(y);
      if (d !== 0n) return d < 0n ? -1 : 1;
    } else if (xd !== yd) {
      return xd ? 1 : -1; // a number sorts after text ("1.0" > "1.rc")
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return 0;
}

export const newestFirst = (versions: Iterable<string>) => [...versions].sort((a, b) => compareVersions(b, a));

/** The UTC day of `date` as YYYYMMDD. */
export function dayOf(date: Date): string {
  return date.toISOString().slice(0, 10).replaceAll('-', '');
}

/** The next default version of the day: one more than the highest N of `YYYYMMDD.N` among `known`. */
export function nextVersion(known: Iterable<string>, date: Date): string {
  const day = dayOf(date);
  let highest = 0;
  for (const v of known) {
    const m = /^(\d{8})\.(\d+)$/.exec(v);
    if (m && m[1] === day) highest = Math.max(highest, Number(m[2]));
  }
  return `${day}.${highest + 1}`;
}
