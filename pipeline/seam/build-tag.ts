// Every command a build starts carries its build directory in its environment
// (HNFORGE_BUILD_DIR=<dir>#<device>:<inode> of that directory). A build killed
// by SIGKILL cannot end its commands, and a host-side tool such as mmdebstrap is
// not rooted in the chroot: the tag is how the next build (or `hnforge clean`)
// recognises them in /proc/<pid>/environ, which keeps the environment a process
// was started with. The inode makes the tag unique: a build in another chroot or
// container can use the same path for a different directory.

import { AsyncLocalStorage } from 'node:async_hooks';
import { stat } from 'node:fs/promises';

export const BUILD_TAG_VAR = 'HNFORGE_BUILD_DIR';

// A holder per build, set once the build knows its directory. run() scopes it to the
// build's own async flow, so in-process builds (tests) never tag their caller's commands.
const current = new AsyncLocalStorage<{ tag?: string }>();

export function withBuildTag<T>(body: () => Promise<T>): Promise<T> {
  return current.run({}, body);
}

/** The tag of the build directory `dir` (which must exist). */
export async function buildTagOf(dir: string): Promise<string> {
  const st = await stat(dir);
  return `${dir}#${st.dev}:${st.ino}`;
}

/** Tags every command started from here on in this build (inside withBuildTag) with `tag` (buildTagOf). */
export function tagCommandsWith(tag: string): void {
  const holder = current.getStore();
  if (holder) holder.tag = tag;
}

/** The tag to add to a command's environment (none outside a build). */
export function buildTagEnv(): Record<string, string> {
  const tag = current.getStore()?.tag;
  return tag === undefined ? {} : { [BUILD_TAG_VAR]: tag };
}
