// The stage cache on the host. Layout under the cache directory:
//   stages/<profile>/<stage>/<key>.json   context fields a stage produced
//   checkpoints/<profile>/<stage>.<key>.img   image snapshot after a checkpoint stage
//   checkpoints/<profile>/finished.<stage>.<key>.img   the last finished image (a hard link)
//   versions/<profile>/<key>.json  the version a finished image of these inputs (<key>: the last key without a version) was given
//   apt/archives/                  Debian packages, shared by every build
// One intermediate checkpoint per profile is kept (the newest), and one finished
// image: the cache never holds more than one extra copy of a profile's image.

import { mkdir, readFile, readdir, rename, rm, writeFile, link, stat } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { cmd } from './seam/command.ts';
import { run } from './seam/run.ts';

const FINISHED = 'finished.';

export class StageCache {
  constructor(readonly dir: string) {}

  // Per profile: outputs may name the profile's own paths, and two profiles can share a key.
  private outputsPath(profile: string, stage: string, key: string) {
    return join(this.dir, 'stages', profile, stage, `${key}.json`);
  }
  private checkpointDir(profile: string) {
    return join(this.dir, 'checkpoints', profile);
  }
  checkpointPath(profile: string, stage: string, key: string, finished = false) {
    return join(this.checkpointDir(profile), `${finished ? FINISHED : ''}${stage}.${key}.img`);
  }

  async loadOutputs(profile: string, stage: string, key: string): Promise<Record<string, unknown> | undefined> {
    return this.loadJson(this.outputsPath(profile, stage, key));
  }

  async saveOutputs(profile: string, stage: string, key: string, outputs: Record<string, unknown>): Promise<void> {
    await this.saveJson(this.outputsPath(profile, stage, key), outputs);
  }

  private async loadJson(path: string): Promise<Record<string, unknown> | undefined> {
    try {
      return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }

  private async saveJson(path: string, data: Record<string, unknown>): Promise<void> {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(`${path}.tmp`, JSON.stringify(data, null, 2));
    await rename(`${path}.tmp`, path);
  }

  private versionPath(profile: string, inputsKey: string) {
    return join(this.dir, 'versions', profile, `${inputsKey}.json`);
  }

  /** The version a finished build of these inputs (the last key, computed without a version) was given, and that build's finish key. */
  async loadVersion(profile: string, inputsKey: string): Promise<{ version: string; finishedKey: string } | undefined> {
    const record = await this.loadJson(this.versionPath(profile, inputsKey));
    return typeof record?.version === 'string' && typeof record.finishedKey === 'string' ? { version: record.version, finishedKey: record.finishedKey } : undefined;
  }

  async saveVersion(profile: string, inputsKey: string, version: string, finishedKey: string): Promise<void> {
    await this.saveJson(this.versionPath(profile, inputsKey), { version, finishedKey });
  }

  async hasCheckpoint(profile: string, stage: string, key: string, finished = false): Promise<boolean> {
    return stat(this.checkpointPath(profile, stage, key, finished)).then(() => true, () => false);
  }

  /**
   * Stores `image` as the checkpoint for (profile, stage, key). With `byLink` the
   * file is hard-linked (the finished image: it will not change again) and only
   * older finished images are removed; otherwise it is copied sparsely and every
   * other intermediate checkpoint of the profile is removed first, so a build
   * never holds more than the work image plus one copy of it (the disk budget).
   */
  async saveCheckpoint(profile: string, stage: string, key: string, image: string, opts: { byLink?: boolean } = {}): Promise<void> {
    const dir = this.checkpointDir(profile);
    await mkdir(dir, { recursive: true });
    // Finished images (linked) replace older finished images; an intermediate checkpoint replaces
    // every other intermediate one. Finished images are named after the finish stage.
    const isFinished = (f: string) => f.startsWith(FINISHED);
    await this.prune(profile, opts.byLink ? isFinished : (f) => !isFinished(f));
    const final = this.checkpointPath(profile, stage, key, opts.byLink);
    const tmp = `${final}.partial`;
    await rm(tmp, { force: true });
    if (opts.byLink) {
      try {
        await link(image, tmp);
      } catch {
        await run(cmd.copySparse(image, tmp));
      }
    } else {
      await run(cmd.copySparse(image, tmp));
    }
    await rename(tmp, final);
  }

  async prune(profile: string, remove: (file: string) => boolean): Promise<void> {
    const dir = this.checkpointDir(profile);
    for (const f of await readdir(dir).catch(() => [] as string[])) {
      if (remove(f)) await rm(join(dir, f), { force: true });
    }
  }

  /** Puts a checkpoint at `to` as a file the build may change (a copy, never a link). */
  async restore(profile: string, stage: string, key: string, to: string): Promise<void> {
    await rm(to, { force: true });
    await mkdir(dirname(to), { recursive: true });
    await run(cmd.copySparse(this.checkpointPath(profile, stage, key), `${to}.partial`));
    await rename(`${to}.partial`, to);
  }
}
