// The arguments of the benchmarks that work on a built image (publish, update):
// `--image PATH` (default out/hn-debian/hn-root.img) and `--rounds N`; a missing
// image is one line saying how to build it.
import { stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { resolve } from 'node:path';

export async function imageBenchArgs(args: string[]): Promise<{ image: string; rounds: number; info: Stats }> {
  const option = (name: string, fallback: string) => {
    const i = args.indexOf(name);
    return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
  };
  const image = resolve(option('--image', 'out/hn-debian/hn-root.img'));
  const rounds = Number(option('--rounds', '2'));
  const info = await stat(image).catch(() => undefined);
  if (!info) {
    console.error(`hnforge-bench: ${image} is missing; build it first: npm run build -- --profile hn-debian (or pass --image PATH)`);
    process.exit(1);
  }
  if (!Number.isInteger(rounds) || rounds < 1) {
    console.error(`hnforge-bench: --rounds ${rounds}: use a whole number of rounds, at least 1`);
    process.exit(1);
  }
  return { image, rounds, info };
}

/** Wall seconds of `work`. */
export async function seconds(work: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - t) / 1e9;
}
