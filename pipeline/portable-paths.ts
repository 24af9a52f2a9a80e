// Cache keys must not depend on where the cache, the output or the repository
// clone are: moving the cache, sharing it between builders or building from
// another checkout must find the same entries. So a host path that goes into a
// key is written relative to its home, behind a placeholder: `<cache>/apt/archives`,
// `<repo>/boot/hn-boot.sh`. Paths inside the image (`/var/tmp/hnforge`) are
// not host paths and stay as they are.

import { isAbsolute, relative, resolve } from 'node:path';
import type { BuildContext } from './context.ts';

type Homes = Pick<BuildContext, 'repoDir' | 'cacheDir' | 'buildDir' | 'outputDir'>;

const PLACEHOLDERS: ReadonlyArray<[keyof Homes, string]> = [
  ['buildDir', '<build>'],
  ['cacheDir', '<cache>'],
  ['outputDir', '<output>'],
  ['repoDir', '<repo>'],
];

/** `path` as `<home>/rest` for the innermost home it lies under; a path under no home is returned as it is. */
export function portablePath(ctx: Homes, path: string): string {
  const homes = PLACEHOLDERS.map(([field, placeholder]) => ({ dir: resolve(ctx[field]), placeholder }))
    // The innermost first: the build directory lies inside the cache, a cache may lie inside the clone.
    .sort((a, b) => b.dir.length - a.dir.length);
  const absolute = resolve(path);
  for (const { dir, placeholder } of homes) {
    if (dir === '/') continue;
    const rest = relative(dir, absolute);
    if (rest === '') return placeholder;
    if (!rest.startsWith('..') && !isAbsolute(rest)) return `${placeholder}/${rest}`;
  }
  return path;
}
