// Every command a build starts carries the build directory in its environment
// (HNFORGE_BUILD_DIR). A build killed by SIGKILL cannot end its commands, and a
// host-side tool such as mmdebstrap is not rooted in the chroot: the tag is how
// the next build (or `hnforge clean`) recognises them in /proc/<pid>/environ,
// which keeps the environment a process was started with.

import { AsyncLocalStorage } from 'node:async_hooks';

export const BUILD_TAG_VAR = 'HNFORGE_BUILD_DIR';

// A holder per build, set once the build knows its directory. run() scopes it to the
// build's own async flow, so in-process builds (tests) never tag their caller's commands.
const current = new AsyncLocalStorage<{ buildDir?: string }>();

export function withBuildTag<T>(body: () => Promise<T>): Promise<T> {
  return current.run({}, body);
}

/** Tags every command started from here on in this build (inside withBuildTag). */
export function tagCommandsWith(buildDir: string): void {
  const holder = current.getStore();
  if (holder) holder.buildDir = buildDir;
}

/** The tag to add to a command's environment (none outside a build). */
export function buildTagEnv(): Record<string, string> {
  const dir = current.getStore()?.buildDir;
  return dir === undefined ? {} : { [BUILD_TAG_VAR]: dir };
}
