// Which Debian mirror to use: the profile's, or the one this host's apt
// sources name (read at run time, so a host pointed at a dated snapshot builds
// from that snapshot). The mirror's InRelease date goes into the cache key, so
// a mirror that moved on invalidates the cached packages.

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HnError } from '../pipeline/errors.ts';
import type { StageDef } from '../pipeline/stage.ts';

interface AptSource {
  uri: string;
  suites: string[];
}

/** Parses one-line (`deb URI SUITE COMP...`) and deb822 (`URIs:`/`Suites:`) apt sources. */
export function parseAptSources(text: string, deb822: boolean): AptSource[] {
  if (!deb822) {
    return text
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter((l) => l.startsWith('deb '))
      .map((l) => l.replace(/\[[^\]]*\]/, '').split(/\s+/))
      .map((f) => ({ uri: f[1] ?? '', suites: [f[2] ?? ''] }));
  }
  return text
    .split(/\n\s*\n/)
    .map((stanza) => {
      const field = (name: string) =>
        stanza.split('\n').find((l) => l.toLowerCase().startsWith(name.toLowerCase() + ':'))?.slice(name.length + 1).trim() ?? '';
      if (field('Enabled').toLowerCase() === 'no' || !field('Types').split(/\s+/).includes('deb')) return undefined;
      return { uri: field('URIs').split(/\s+/)[0] ?? '', suites: field('Suites').split(/\s+/) };
    })
    .filter((s): s is AptSource => Boolean(s?.uri));
}

export async function hostMirror(suite: string, etcApt = '/etc/apt'): Promise<string | undefined> {
  const sources: AptSource[] = [];
  const main = await readFile(join(etcApt, 'sources.list'), 'utf8').catch(() => '');
  sources.push(...parseAptSources(main, false));
  for (const f of (await readdir(join(etcApt, 'sources.list.d')).catch(() => [] as string[])).sort()) {
    if (f.endsWith('.list')) sources.push(...parseAptSources(await readFile(join(etcApt, 'sources.list.d', f), 'utf8'), false));
    if (f.endsWith('.sources')) sources.push(...parseAptSources(await readFile(join(etcApt, 'sources.list.d', f), 'utf8'), true));
  }
  return sources.find((s) => s.suites.includes(suite) && /^https?:\/\//.test(s.uri))?.uri.replace(/\/+$/, '');
}

/** Fetches the suite's InRelease and returns its Date: line; a clear error names the mirror when it cannot. */
export async function mirrorReleaseDate(mirror: string, suite: string, timeoutMs = 20_000): Promise<string> {
  const url = `${mirror}/dists/${suite}/InRelease`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    const why = (e as Error).name === 'TimeoutError' ? `no answer in ${timeoutMs / 1000} s` : ((e as { cause?: Error }).cause?.message ?? (e as Error).message);
    throw new HnError('EMIRROR', `Debian mirror ${mirror} is unreachable (${why}); check the network or set debian.mirror in the profile`);
  }
  if (!res.ok) {
    throw new HnError('EMIRROR', `Debian mirror ${mirror} has no suite '${suite}' (${url}: HTTP ${res.status}); check debian.mirror and debian.suite in the profile`);
  }
  const text = await res.text();
  return /^Date:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? 'undated';
}

export const debianMirror: StageDef = {
  name: 'debian-mirror',
  provides: ['mirror', 'mirrorDate'],
  title: 'Resolve the Debian mirror',
  kind: 'compute',
  bases: ['debian'],
  needsRoot: false,
  version: 1,
  async run(ctx, io) {
    const deb = ctx.profile.debian!;
    const mirror = deb.mirror?.replace(/\/+$/, '') ?? (await hostMirror(deb.suite));
    if (!mirror) {
      throw new HnError('ENOMIRROR', `no Debian mirror for '${deb.suite}' in this host's apt sources; set debian.mirror in the profile`);
    }
    const mirrorDate = await mirrorReleaseDate(mirror, deb.suite);
    io.log(`mirror ${mirror}, ${deb.suite} InRelease dated ${mirrorDate}`);
    return { mirror, mirrorDate };
  },
};
