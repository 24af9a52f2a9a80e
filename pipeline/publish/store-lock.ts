// The publish lock's content and rules, shared by the stores that keep it as a
// small object beside a profile's channels (a file in a directory, an object
// in S3): who holds it, when it is stale, and how a refusal reads.

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/** Name of the lock object under a profile. */
export const LOCK_NAME = '.publish.lock';
/** How often a waiting locker looks again. */
export const LOCK_POLL_MS = 200;

export interface LockHolder {
  host: string;
  pid: number;
  since: string;
  /** Tells two lockers apart on a store that cannot create an object exclusively (it reads back what it wrote). */
  token?: string;
}

/** This process as a lock holder, as of now. */
export function thisHolder(): LockHolder {
  return { host: hostname(), pid: process.pid, since: new Date().toISOString(), token: randomBytes(8).toString('hex') };
}

/** A lock's text, or undefined when it is not a holder record (a half-written file, something else). */
export function parseHolder(text: string): LockHolder | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (typeof v.host === 'string' && typeof v.pid === 'number' && typeof v.since === 'string') return v as LockHolder;
  } catch {
    // not JSON: fall through
  }
  return undefined;
}

/**
 * A holder that died on this host (SIGKILL, power cut of the builder) left a stale
 * lock that may be taken over. Another host's holder is never judged: we cannot
 * see its processes.
 */
export function isStale(holder: LockHolder, host = hostname()): boolean {
  return holder.host === host && !processAlive(holder.pid);
}

/** "pid N on HOST since T" for EPUBLISH_BUSY messages. */
export function describeHolder(holder: LockHolder | undefined): string {
  return holder ? `pid ${holder.pid} on ${holder.host} since ${holder.since}` : 'an unknown holder';
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, it is just not ours.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
