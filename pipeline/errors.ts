// A catalogue of the errors a user can cause or meet. Each carries a code, one
// line saying what is wrong and what to do, and the exit code the CLI uses.
// Anything that is not an HnError is a bug and is shown with its stack.

export const EXIT = {
  ok: 0,
  buildFailed: 1,
  usage: 2,
  preflight: 3,
  interrupted: 130,
  /** Not the user's fault: a bug in hnforge (shown with its stack). */
  internal: 70,
} as const;

export class HnError extends Error {
  readonly code: string;
  readonly exitCode: number;
  readonly details: string[];
  constructor(code: string, message: string, opts: { exitCode?: number; details?: string[]; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'HnError';
    this.code = code;
    this.exitCode = opts.exitCode ?? EXIT.buildFailed;
    this.details = opts.details ?? [];
  }
}

export const usageError = (message: string) => new HnError('EUSAGE', message, { exitCode: EXIT.usage });

/** Raised on SIGINT/SIGTERM so stages stop at the next await and the build unwinds. */
export class InterruptedError extends HnError {
  constructor(signal: string) {
    super('EINTERRUPTED', `interrupted by ${signal}; cleaned up, rerun the same command to resume from the cache`, {
      exitCode: EXIT.interrupted,
    });
  }
}

export function isHnError(e: unknown): e is HnError {
  return e instanceof HnError;
}
