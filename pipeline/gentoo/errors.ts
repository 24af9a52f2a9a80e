// The Gentoo pipeline's error catalogue. Each refusal has its own code so a
// log, a test or CI can tell a forged signature from a flaky mirror, and one
// line that says what is wrong and what to do about it.

import { HnError } from '../errors.ts';

export const GENTOO_ERRORS = {
  /** The clearsigned stage3 index did not verify against the pinned key. */
  EGENTOO_INDEX_SIGNATURE: 'stage3 index signature',
  /** The index verified but its body is not `<path> <bytes>` lines for this variant. */
  EGENTOO_INDEX_FORMAT: 'stage3 index format',
  /** The index (or a pinned timestamp) names a file the mirror does not have. */
  EGENTOO_MISSING_FILE: 'file missing on mirror',
  /** Network or HTTP failure other than 404. */
  EGENTOO_DOWNLOAD: 'download failed',
  /** The download ended before the announced size. */
  EGENTOO_TRUNCATED: 'truncated download',
  /** The detached signature over the tarball is bad, missing, or from another key. */
  EGENTOO_SIGNATURE: 'bad signature',
  /** SHA512 or BLAKE2B of the tarball differs from .DIGESTS. */
  EGENTOO_DIGEST: 'wrong digest',
  /** .DIGESTS has no usable SHA512 and BLAKE2B entry for the tarball. */
  EGENTOO_DIGESTS_FORMAT: 'DIGESTS format',
  /** The tarball contains absolute paths, `..`, or links escaping the root. */
  EGENTOO_TAR_UNSAFE: 'unsafe tarball',
  /** The profile names no keyring, or the keyring file cannot be read. */
  EGENTOO_KEYRING: 'keyring',
  /** genkernel's linuxrc in the image lacks the line the boot hook is inserted at. */
  EGENTOO_LINUXRC_ANCHOR: 'linuxrc anchor missing',
  /** The kernel genkernel built lacks options the fragment requires. */
  EGENTOO_KERNEL_CONFIG: 'kernel config',
  /** genkernel finished but the kernel or initramfs is not in /boot. */
  EGENTOO_KERNEL_OUTPUT: 'kernel output missing',
  /** emerge failed; the message says which package or which profile change is needed. */
  EGENTOO_EMERGE: 'emerge failed',
  /** The profile's gentoo section is missing or inconsistent. */
  EGENTOO_PROFILE: 'profile',
} as const;

export type GentooErrorCode = keyof typeof GENTOO_ERRORS;

export function gentooError(code: GentooErrorCode, message: string, opts: { details?: string[]; cause?: unknown } = {}): HnError {
  return new HnError(code, message, opts);
}
