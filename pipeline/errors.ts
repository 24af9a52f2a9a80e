// The catalogue of errors a user can cause or meet. Each code has its exit
// status and what it means as fields here, and one home: a thrower names a
// code and writes one line saying what is wrong and what to do. Anything that
// is not an HnError is a bug and is shown with its stack.

export const EXIT = {
  ok: 0,
  buildFailed: 1,
  usage: 2,
  preflight: 3,
  interrupted: 130,
  /** Not the user's fault: a bug in hnforge (shown with its stack). */
  internal: 70,
} as const;

interface ErrorKind {
  exit: number;
  /** What the code means, for --help, logs and the tests that check the catalogue. */
  meaning: string;
}

const build = (meaning: string): ErrorKind => ({ exit: EXIT.buildFailed, meaning });
const usage = (meaning: string): ErrorKind => ({ exit: EXIT.usage, meaning });
const preflight = (meaning: string): ErrorKind => ({ exit: EXIT.preflight, meaning });

export const ERRORS = {
  // The command line and the checks before any work.
  EUSAGE: usage('unknown option, stage or command, or options that cannot be combined'),
  ECONFIRM: build('a destructive command was not confirmed with --yes'),
  EPREFLIGHT: preflight('not root, host tools missing, too little disk space'),
  EPROFILE: preflight('unknown or invalid profile'),
  ENOMIRROR: preflight('no Debian mirror known for the suite'),
  ELOCKED: build('another build of the same profile and cache is running'),
  // Running commands (pipeline/seam/run.ts).
  ENOTFOUND: build('a host program is not installed'),
  EPACKAGES: build('Debian packages are missing and hnforge is not root to install them'),
  ECOMMAND: build('a command exited non-zero'),
  ETIMEOUT: build('a command ran past its timeout'),
  ESIGNAL: build('a command was killed by a signal'),
  EABORTED: { exit: EXIT.interrupted, meaning: 'a command was stopped or not started because the build is stopping' },
  EINTERRUPTED: { exit: EXIT.interrupted, meaning: 'SIGINT or SIGTERM; everything acquired was released' },
  ELEFTOVER: build('a killed earlier build left resources that could not be released'),
  ECLEANUP: build('releasing what the build held failed; the message lists what is left'),
  // Stages.
  EMIRROR: build('the Debian mirror is unreachable or lacks the suite'),
  EPACKAGE: build('a profile package does not exist on the mirror'),
  ENOKERNEL: build('the image has no kernel'),
  ENOBUSYBOX: build('the image has no static busybox for the initramfs'),
  EKMOD: build('the kernel lacks a module the boot chain needs'),
  ESIDECAR: build('a checksum sidecar is malformed'),
  ENOSPACE: build('no space left for the output'),
  EOUTPUT: build('the output directory cannot be written'),
  EIMAGE_PATH: build('a path inside the image cannot be resolved inside it (link loop, not a directory, unsafe target)'),
  EKEPTGOING: build('--keep-going finished with failed optional stages'),
  // Provisioning a disk.
  EDISKSMALL: build('the disk is too small for EFI-BOOT, the image and a filesystem'),
  EDISKNOTEMPTY: build('the disk holds data and --force was not given'),
  EDISKBUSY: build('the disk or one of its partitions is mounted'),
  EPARTITION: build('partitioning did not leave the expected partitions'),
  // Publishing (pipeline/publish): SHA256SUMS and its detached signature SHA256SUMS.gpg.
  ESUMS_FORMAT: build('SHA256SUMS has a malformed or duplicate line, or a file name it cannot list'),
  ESUMS_CONFLICT: build('SHA256SUMS already lists the file with another sha256 (published files are immutable)'),
  ESIGN_FORMAT: build('a key or signature is not readable OpenPGP data, or a public key was given where a private one is needed'),
  ESIGN_PASSPHRASE: build('the private key is passphrase-protected and the passphrase is missing or wrong'),
  ESIGN_BAD: build('the signature does not match the data: SHA256SUMS or SHA256SUMS.gpg was altered, truncated or mixed with another version'),
  ESIGN_UNKNOWN_KEY: build('the signature was made by a key that is not in the keyring'),
  ESIGN_KEY_EXPIRED: build('the signing key has expired (gpgv and gpg still exit 0 for it, with EXPKEYSIG in their status)'),
  ESIGN_KEY_REVOKED: build('the signing key has been revoked'),
  ESIGN_KEY_EXISTS: usage('key files already exist and force was not given'),
  // Artifact stores and versions (pipeline/publish/store*.ts, publish.ts, verify.ts).
  ESTORE_URL: usage('a store URL is not file:///path, s3://bucket[/prefix] or oci://host[:port]/repository'),
  ESTORE: build('the store is unreachable, kept failing (5xx, dropped connections) past the retries, or answered nonsense'),
  ESTORE_FULL: build('the store has no space (or quota) left for the upload'),
  ESTORE_DENIED: build('the store refused access (permissions, credentials, read-only)'),
  EVERSION: usage('a version is not of the form the store accepts (letters, digits, ".", "+", "~", "-"; e.g. 20261202.1)'),
  EPUBLISH_EXISTS: build('the version is already published with other content (published files are immutable)'),
  EPUBLISH_MISSING: build('a version, channel or file named is not in the store'),
  EPUBLISH_BUSY: build('another publish, promote or prune of the profile holds the store lock'),
  EUNSIGNED: build('the channel is not signed and unsigned versions were not allowed'),
  EVERIFY: build('a stored file does not match SHA256SUMS or its manifest (tampered, truncated or incomplete)'),
  // Gentoo (pipeline/gentoo): each refusal its own code, so a log, a test or CI can
  // tell a forged signature from a flaky mirror.
  EGENTOO_INDEX_SIGNATURE: build('the clearsigned stage3 index did not verify against the pinned key'),
  EGENTOO_INDEX_FORMAT: build('the index verified but its body is not `<path> <bytes>` lines for this variant'),
  EGENTOO_MISSING_FILE: build('the index (or a pinned timestamp) names a file the mirror does not have'),
  EGENTOO_DOWNLOAD: build('network or HTTP failure other than 404'),
  EGENTOO_TRUNCATED: build('the download ended before the announced size'),
  EGENTOO_SIGNATURE: build('the detached signature over the tarball is bad, missing, or from another key'),
  EGENTOO_DIGEST: build('SHA512 or BLAKE2B of the tarball differs from .DIGESTS'),
  EGENTOO_DIGESTS_FORMAT: build('.DIGESTS has no usable SHA512 and BLAKE2B entry for the tarball'),
  EGENTOO_TAR_UNSAFE: build('the tarball contains absolute paths, `..`, or links escaping the root'),
  EGENTOO_KEYRING: build('the keyring file (--keyring, gentoo.keyring) cannot be read or lacks a pinned key'),
  EGENTOO_KEY_FETCH: build('no key source (key server, WKD) served a key with the pinned primary fingerprint'),
  EGENTOO_KEY_EXPIRED: build('a pinned key is expired or revoked in every copy found (cache, key server, WKD, --keyring)'),
  EGENTOO_LINUXRC_ANCHOR: build("genkernel's linuxrc lacks the line the boot hook is inserted at"),
  EGENTOO_KERNEL_CONFIG: build('the kernel genkernel built lacks options the fragment requires'),
  EGENTOO_KERNEL_OUTPUT: build('genkernel finished but the kernel or initramfs is not in /boot'),
  EGENTOO_RESOLVE: build('emerge --pretend of the set reports masked packages, missing keywords, USE or REQUIRED_USE problems, licences or blockers (all listed)'),
  EGENTOO_EMERGE: build('emerge failed'),
  EGENTOO_CHECK: build('hnforge check-gentoo: real portage rejected the generated configuration, or reported what hnforge did not read'),
  EGENTOO_PROFILE: preflight("the profile's gentoo section is missing or inconsistent"),
  // Publishing to an OCI registry (pipeline/publish/oci.ts).
  EOCI_REFERENCE: usage('an oci:// destination is not oci://host[:port]/repository[:tag]'),
  EOCI_CREDENTIALS: preflight('the Docker config file cannot be read or its auth entry is malformed'),
  EOCI_AUTH: build('the registry asked for credentials that are missing, or refused the ones given (401/403)'),
  EOCI_NOT_FOUND: build('the repository, manifest, tag or blob does not exist in the registry'),
  EOCI_REFUSED: build('the registry refused a request (4xx): invalid manifest or upload, deletion disabled, unsupported'),
  EOCI_REGISTRY: build('the registry is unreachable, kept failing (5xx, dropped connections) past the retries, or broke the protocol'),
  EOCI_DIGEST: build("content's sha256 differs from the digest it was announced or asked for"),
  // Boot test and the nightly job (pipeline/boot-test.ts, pipeline/nightly.ts).
  EBOOT_TEST: build('the image did not boot under qemu to its userspace marker (the message says where it stopped; the serial log is kept)'),
  ENIGHTLY: build('a step of the nightly run failed for at least one profile (the summary names each)'),
} as const satisfies Record<string, ErrorKind>;

export type ErrorCode = keyof typeof ERRORS;

export class HnError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  readonly details: string[];
  /** `exitCode` overrides the catalogue only to carry another error's status (cleanup after a failure). */
  constructor(code: ErrorCode, message: string, opts: { exitCode?: number; details?: string[]; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'HnError';
    this.code = code;
    this.exitCode = opts.exitCode ?? ERRORS[code].exit;
    this.details = opts.details ?? [];
  }
}

export const usageError = (message: string) => new HnError('EUSAGE', message);

/** Raised on SIGINT/SIGTERM so stages stop at the next await and the build unwinds. */
export class InterruptedError extends HnError {
  constructor(readonly signal: string) {
    super('EINTERRUPTED', `interrupted by ${signal}; cleaned up, rerun the same command to resume from the cache`);
  }
}

export function isHnError(e: unknown): e is HnError {
  return e instanceof HnError;
}
