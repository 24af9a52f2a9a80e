// `hn-root_<version>.json`: made from the build report and the publish pass,
// and read back (verify, diff, promote, prune) with enough checking that a
// damaged or foreign file gives one clear line rather than a crash later.

import { HnError } from '../errors.ts';
import type { BuildReport } from '../report.ts';
import type { CompressedImage } from './artifact.ts';
import { MANIFEST_FORMAT, type Manifest } from './manifest-types.ts';
import { versionFiles } from './store.ts';

export function buildManifest(report: BuildReport, version: string, channel: string, compressed: CompressedImage, publishedAt: Date): Manifest {
  const names = versionFiles(version);
  return {
    format: MANIFEST_FORMAT,
    version,
    channel,
    profile: report.profile,
    base: report.base,
    gitRevision: report.gitRevision ?? 'unknown',
    inputsDigest: report.inputsDigest,
    sources: report.sources ?? {},
    builtAt: report.builtAt,
    publishedAt: publishedAt.toISOString(),
    image: { fileName: 'hn-root.img', apparentBytes: compressed.image.bytes, usedBytes: report.usedBytes, sha256: compressed.image.sha256 },
    artifact: { fileName: names.artifact, compression: 'zstd', bytes: compressed.artifact.bytes, sha256: compressed.artifact.sha256 },
    packages: report.packages,
    files: report.files ?? [],
  };
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Parses and checks a stored manifest; `where` names it in messages. */
export function parseManifest(bytes: Uint8Array, where: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(Buffer.from(bytes).toString('utf8')) as Manifest;
  } catch (e) {
    throw new HnError('EVERIFY', `${where} is not JSON (${(e as Error).message})`, { cause: e });
  }
  const problems: string[] = [];
  if (m?.format !== MANIFEST_FORMAT) problems.push(`format is ${JSON.stringify(m?.format)}, not ${MANIFEST_FORMAT}`);
  if (typeof m?.version !== 'string') problems.push('no version');
  if (!HEX64.test(m?.image?.sha256 ?? '')) problems.push('no image sha256');
  if (!HEX64.test(m?.artifact?.sha256 ?? '')) problems.push('no artifact sha256');
  if (!Array.isArray(m?.packages) || !Array.isArray(m?.files)) problems.push('no package or file list');
  if (problems.length) throw new HnError('EVERIFY', `${where} is not an hnforge manifest: ${problems.join('; ')}`);
  return m;
}

export function manifestBytes(m: Manifest): Uint8Array {
  return Buffer.from(JSON.stringify(m, null, 1) + '\n');
}
