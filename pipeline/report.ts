// The build report: JSON for machines, a short text for people, both beside the image.
// The file list is in the JSON only (tens of thousands of lines), one entry per line.

import { stat } from 'node:fs/promises';
import type { ImageFileEntry } from './publish/manifest-types.ts';

/** What changes whenever a file's content can have changed (any write moves mtime and ctime). */
export interface FileIdentity {
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
}

export async function fileIdentity(path: string): Promise<FileIdentity> {
  const s = await stat(path, { bigint: true });
  return { dev: String(s.dev), ino: String(s.ino), size: String(s.size), mtimeNs: String(s.mtimeNs), ctimeNs: String(s.ctimeNs) };
}

export interface BuildReport {
  profile: string;
  base: string;
  /** The image's version (--version, else YYYYMMDD.N), as /etc/hn-release and os-release's IMAGE_VERSION carry it. */
  version: string;
  /** Commit of the hnforge checkout that built it, "<sha>-dirty" with uncommitted changes to tracked files; absent outside git. */
  gitRevision?: string;
  /** What pinned the content: debian.mirror, debian.mirrorDate, debian.suite / gentoo.stage3(.url|.sha512|.blake2b), gentoo.repository.snapshot|commit. */
  sources: Record<string, string>;
  /** The keyring baked into the image (its path inside the image and the fingerprints); absent: the image has no publishing key. */
  publishingKey?: { path: string; fingerprints: string[] };
  image: string;
  /** Key of the last stage: a digest of every input of the build. */
  inputsDigest: string;
  /** SHA-256 of the image, as in the hn-root.img.sha256 sidecar published beside it. */
  sha256?: string;
  /** The published image file as it was when `sha256` was recorded: publishing reuses the sha256 while all of it still matches. */
  imageIdentity?: FileIdentity;
  builtAt: string;
  wallSeconds: number;
  apparentBytes: number;
  usedBytes: number;
  packages: { name: string; version: string }[];
  stages: { name: string; status: string; seconds: number }[];
  /** Every entry of the finished tree, sorted by path (the published manifest's `files`). */
  files: ImageFileEntry[];
}

/** The JSON report: indented, except the file list, one entry per line (a 30 000-line list stays greppable and ~4 MB). */
export function formatReportJson(r: BuildReport): string {
  const { files, ...rest } = r;
  const head = JSON.stringify({ ...rest, files: [] }, null, 2);
  const list = files?.length ? `[\n${files.map((f) => `    ${JSON.stringify(f)}`).join(',\n')}\n  ]` : '[]';
  // "files" is the last key: replace its empty list (the last "[]" of the text) with the list.
  const at = head.lastIndexOf('[]');
  return `${head.slice(0, at)}${list}${head.slice(at + 2)}\n`;
}

const MiB = 1024 * 1024;

export function summarise(r: BuildReport): string {
  const lines = [
    `profile        ${r.profile} (${r.base})`,
    `version        ${r.version}`,
    `built from     hnforge ${r.gitRevision ?? '(not a git checkout)'}`,
    ...Object.entries(r.sources ?? {}).map(([k, v]) => `source         ${k} ${v}`),
    `publishing key ${r.publishingKey ? `${r.publishingKey.fingerprints.join(', ')} (keyring ${r.publishingKey.path})` : 'none: the image carries no keyring to verify updates with (--signing-key)'}`,
    `image          ${r.image}`,
    `inputs digest  ${r.inputsDigest}`,
    `sha256         ${r.sha256 ? `${r.sha256} (sidecar ${r.image.split('/').pop()}.sha256)` : 'not computed (--no-sidecar)'}`,
    `built at       ${r.builtAt} in ${r.wallSeconds.toFixed(1)} s`,
    `size           ${(r.apparentBytes / MiB / 1024).toFixed(1)} GiB apparent, ${(r.usedBytes / MiB).toFixed(0)} MiB used`,
    `packages       ${r.packages.length}`,
    `files          ${r.files?.length ?? 0} (listed in the JSON report)`,
    'stages:',
    ...r.stages.map((s) => `  ${s.name.padEnd(20)} ${s.status.padEnd(10)} ${s.seconds.toFixed(1).padStart(7)} s`),
  ];
  return lines.join('\n') + '\n';
}
