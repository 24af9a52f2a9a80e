// The build report: JSON for machines, a short text for people, both beside the image.

export interface BuildReport {
  profile: string;
  base: string;
  image: string;
  /** Key of the last stage: a digest of every input of the build. */
  inputsDigest: string;
  /** SHA-256 of the image, as in the hn-root.img.sha256 sidecar published beside it. */
  sha256?: string;
  builtAt: string;
  wallSeconds: number;
  apparentBytes: number;
  usedBytes: number;
  packages: { name: string; version: string }[];
  stages: { name: string; status: string; seconds: number }[];
}

const MiB = 1024 * 1024;

export function summarise(r: BuildReport): string {
  const lines = [
    `profile        ${r.profile} (${r.base})`,
    `image          ${r.image}`,
    `inputs digest  ${r.inputsDigest}`,
    `sha256         ${r.sha256 ? `${r.sha256} (sidecar ${r.image.split('/').pop()}.sha256)` : 'not computed (--no-sidecar)'}`,
    `built at       ${r.builtAt} in ${r.wallSeconds.toFixed(1)} s`,
    `size           ${(r.apparentBytes / MiB / 1024).toFixed(1)} GiB apparent, ${(r.usedBytes / MiB).toFixed(0)} MiB used`,
    `packages       ${r.packages.length}`,
    'stages:',
    ...r.stages.map((s) => `  ${s.name.padEnd(20)} ${s.status.padEnd(10)} ${s.seconds.toFixed(1).padStart(7)} s`),
  ];
  return lines.join('\n') + '\n';
}
