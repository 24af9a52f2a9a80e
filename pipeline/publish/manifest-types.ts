// What `hn-root_<version>.json` holds: the published description of one
// version. Written by publish, read by verify, diff, versions and (its image
// sha256) by the node's updater.

export const MANIFEST_FORMAT = 'hnforge-manifest-1';

/** One entry of the image's file list. */
export interface ImageFileEntry {
  /** Absolute path inside the image ("/etc/hostname"). */
  path: string;
  /** "f" regular file, "d" directory, "l" symlink, "c"/"b" device, "p" fifo, "s" socket. */
  type: 'f' | 'd' | 'l' | 'c' | 'b' | 'p' | 's';
  /** Permission bits and setuid/setgid/sticky, octal text ("0755"). */
  mode: string;
  uid: number;
  gid: number;
  /** Bytes (regular files and symlinks; 0 otherwise). */
  size: number;
  /** sha256 of a regular file's content; a symlink's target; undefined otherwise. */
  sha256?: string;
  target?: string;
}

export interface PackageEntry {
  name: string;
  version: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: string;
  channel: string;
  profile: string;
  base: string;
  /** `git describe`-free: the commit of the repository that built it, "+dirty" when it had changes. */
  gitRevision: string;
  /** Key of the last build stage: a digest of every input of the build. */
  inputsDigest: string;
  /** Where the content came from, pinned: mirror and its date, stage3 digest, repository snapshot. */
  sources: Record<string, string>;
  builtAt: string;
  publishedAt: string;
  image: {
    /** File name on the host partition once decompressed. */
    fileName: string;
    apparentBytes: number;
    usedBytes: number;
    /** sha256 of the raw image: the value its boot sidecar carries. */
    sha256: string;
  };
  artifact: {
    fileName: string;
    compression: 'zstd';
    bytes: number;
    sha256: string;
  };
  packages: PackageEntry[];
  files: ImageFileEntry[];
}
