// What changed between two published versions: packages added, removed and
// upgraded, files added, removed and changed, and sizes. Read from two
// manifests; printed by `hnforge diff` and in each build report against the
// channel's previous version.

import type { ImageFileEntry, Manifest } from './manifest-types.ts';
import { compareVersions } from './version.ts';

export interface VersionDiff {
  from: string;
  to: string;
  packages: { added: string[]; removed: string[]; upgraded: { name: string; from: string; to: string }[]; downgraded: { name: string; from: string; to: string }[] };
  files: { added: string[]; removed: string[]; changed: string[] };
  sizes: { apparent: [number, number]; used: [number, number]; artifact: [number, number] };
}

type Sides = Pick<Manifest, 'version' | 'packages' | 'files' | 'image'> & { artifact?: { bytes: number } };

/** A file counts as changed when anything a node would notice differs: type, content, target, mode or owner. */
function fileKey(f: ImageFileEntry): string {
  return [f.type, f.mode, f.uid, f.gid, f.size, f.sha256 ?? '', f.target ?? ''].join(' ');
}

export function diffManifests(a: Sides, b: Sides): VersionDiff {
  const pa = new Map(a.packages.map((p) => [p.name, p.version]));
  const pb = new Map(b.packages.map((p) => [p.name, p.version]));
  const upgraded: VersionDiff['packages']['upgraded'] = [];
  const downgraded: VersionDiff['packages']['downgraded'] = [];
  for (const [name, to] of pb) {
    const from = pa.get(name);
    if (from === undefined || from === to) continue;
    (compareVersions(to, from) > 0 ? upgraded : downgraded).push({ name, from, to });
  }
  const fa = new Map(a.files.map((f) => [f.path, fileKey(f)]));
  const fb = new Map(b.files.map((f) => [f.path, fileKey(f)]));
  const sorted = (xs: Iterable<string>) => [...xs].sort();
  return {
    from: a.version,
    to: b.version,
    packages: {
      added: sorted([...pb.keys()].filter((n) => !pa.has(n))),
      removed: sorted([...pa.keys()].filter((n) => !pb.has(n))),
      upgraded: upgraded.sort((x, y) => x.name.localeCompare(y.name)),
      downgraded: downgraded.sort((x, y) => x.name.localeCompare(y.name)),
    },
    files: {
      added: sorted([...fb.keys()].filter((p) => !fa.has(p))),
      removed: sorted([...fa.keys()].filter((p) => !fb.has(p))),
      changed: sorted([...fb.keys()].filter((p) => fa.has(p) && fa.get(p) !== fb.get(p))),
    },
    sizes: {
      apparent: [a.image.apparentBytes, b.image.apparentBytes],
      used: [a.image.usedBytes, b.image.usedBytes],
      artifact: [a.artifact?.bytes ?? 0, b.artifact?.bytes ?? 0],
    },
  };
}

const MiB = 1024 * 1024;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
const delta = ([x, y]: [number, number]) => `${mib(x)} -> ${mib(y)} (${y >= x ? '+' : ''}${mib(y - x)})`;

/** People's view of a diff; `maxFiles` caps each file list (the JSON has them all). */
export function formatDiff(d: VersionDiff, maxFiles = 20): string {
  const list = (title: string, xs: string[]) => {
    if (!xs.length) return [];
    const shown = xs.slice(0, maxFiles).map((x) => `    ${x}`);
    return [`  ${title} (${xs.length})`, ...shown, ...(xs.length > maxFiles ? [`    ... ${xs.length - maxFiles} more`] : [])];
  };
  const p = d.packages;
  const lines = [
    `changes from ${d.from} to ${d.to}:`,
    `packages: ${p.added.length} added, ${p.removed.length} removed, ${p.upgraded.length} upgraded, ${p.downgraded.length} downgraded`,
    ...list('added', p.added),
    ...list('removed', p.removed),
    ...list('upgraded', p.upgraded.map((u) => `${u.name} ${u.from} -> ${u.to}`)),
    ...list('downgraded', p.downgraded.map((u) => `${u.name} ${u.from} -> ${u.to}`)),
    `files: ${d.files.added.length} added, ${d.files.removed.length} removed, ${d.files.changed.length} changed`,
    ...list('added', d.files.added),
    ...list('removed', d.files.removed),
    ...list('changed', d.files.changed),
    `sizes: apparent ${delta(d.sizes.apparent)}; used ${delta(d.sizes.used)}; compressed ${delta(d.sizes.artifact)}`,
  ];
  return lines.join('\n') + '\n';
}
