// Errors of the Gentoo pipeline: the EGENTOO_* codes of the catalogue (pipeline/errors.ts).

import { HnError, type ErrorCode } from '../errors.ts';

/** The Gentoo part of the catalogue in pipeline/errors.ts. */
export type GentooErrorCode = Extract<ErrorCode, `EGENTOO_${string}`>;

export function gentooError(code: GentooErrorCode, message: string, opts: { details?: string[]; cause?: unknown } = {}): HnError {
  return new HnError(code, message, opts);
}
