// The build, as a script of verbs: resolve the profile, run the cheap compute
// stages, key every stage, decide where to resume, run what is left, publish,
// and always unwind what was acquired.

import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StageCache } from './cache.ts';
import type { BuildContext } from './context.ts';
import { checkFactOrder, checkProvided, cachedFacts } from './facts.ts';
import { buildPaths, deepFreeze, stageLogFile } from './plan.ts';
import { HnError, InterruptedError } from './errors.ts';
import { hashFile, hashValue } from './hash.ts';
import { portablePath } from './portable-paths.ts';
import { resolveProfile } from './profiles.ts';
import { runSteps, type ProgressMode, type Step } from './progress.ts';
import { cmd } from './seam/command.ts';
import { ResourceStack } from './seam/resources.ts';
import { killRunningCommands, run } from './seam/run.ts';
import type { StageDef } from './stage.ts';
import { asStage, openStageIO } from './stage-io.ts';
import { stagesFor } from './stages-table.ts';
import { outputFiles, publishImage } from './publish/output.ts';
import { IMAGE_PATHS } from './boot/contract.ts';
import { checkVersion } from './publish/version.ts';
import { buildSources, decideVersion, gitRevision, publishingKeyOf, reportVersion, storeVersions, type SigningKeyInput, type VersionDecision } from './release.ts';
import { acquireBuildLock } from './lock.ts';
import { assertRecovered, canonicalBuildDir, releaseLeftovers } from './recovery.ts';
import { buildTagOf, tagCommandsWith, withBuildTag } from './seam/build-tag.ts';

export interface BuildOptions {
  profile: string;
  repoDir: string;
  /** Where profiles are read from (default: <repoDir>/profiles). */
  profilesDir?: string;
  /** Replaces the stage table (tests run the engine on small stage lists of their own). */
  stages?: StageDef[];
  cacheDir: string;
  outputDir: string;
  dryRun?: boolean;
  from?: string;
  only?: string;
  keepGoing?: boolean;
  /** Write the checksum sidecar beside the image (default true; a 15 GiB sha256 costs ~15 s). */
  sidecar?: boolean;
  /** The image's version (checked); default: YYYYMMDD.N (pipeline/release.ts decideVersion). */
  version?: string;
  /** A store (pipeline/publish/stores.ts URL) whose versions of the profile count for the default version. */
  store?: string;
  /** The key the image's store is signed with: its public half is baked into the image. */
  signingKey?: SigningKeyInput;
  /** Gentoo, air-gapped: armored file with the pinned keys (--keyring); replaces gentoo.keyring. */
  keyring?: string;
  /** "Now" for the default version (tests); the wall clock by default. */
  now?: Date;
  progress: ProgressMode;
}

export type StageStatus = 'ran' | 'cached' | 'restored' | 'failed' | 'failed-kept-going' | 'not-run' | 'would-run';

export interface StageOutcome {
  name: string;
  kind: string;
  status: StageStatus;
  seconds: number;
  key?: string;
  error?: string;
  plan?: string[];
}

export interface BuildResult {
  profile: string;
  ok: boolean;
  /** The image's version and how it was chosen (undefined only when the build failed before deciding it). */
  version?: VersionDecision;
  image?: string;
  report?: string;
  stages: StageOutcome[];
  /** What a dead earlier build of this profile had left and this build released first. */
  recovered: string[];
  cleaned: string[];
  error?: { code: string; message: string; details: string[] };
}

const CHAIN_ROOT = 'hnforge-stage-chain-v1';

/**
 * One key per non-compute stage, each chaining the one before, so a change re-runs that stage and all after it.
 * No absolute host path may reach a key (pipeline/portable-paths.ts): stage inputs name host paths by portablePath().
 */
export async function stageKeys(stages: StageDef[], ctx: BuildContext): Promise<Map<string, string>> {
  const keys = new Map<string, string>();
  let previous = CHAIN_ROOT;
  for (const stage of stages) {
    if (stage.kind === 'compute') continue;
    const files = stage.files?.(ctx) ?? [];
    const fileHashes: Record<string, string> = {};
    // Named relative to their home: where the clone or the cache is does not change a key.
    for (const f of files) fileHashes[portablePath(ctx, f)] = await hashFile(f).catch(() => 'missing');
    previous = await hashValue({ previous, name: stage.name, version: stage.version, inputs: stage.inputs?.(ctx) ?? null, files: fileHashes });
    keys.set(stage.name, previous);
  }
  return keys;
}

/** Builds a profile; every command it runs carries its build directory (seam/build-tag.ts). */
export function build(opts: BuildOptions): Promise<BuildResult> {
  return withBuildTag(() => buildTagged(opts));
}

async function buildTagged(opts: BuildOptions): Promise<BuildResult> {
  if (opts.version !== undefined) checkVersion(opts.version); // a typo is one line before any work
  const resolved = await resolveProfile(opts.profilesDir ?? join(opts.repoDir, 'profiles'), opts.profile);
  const profile = opts.keyring && resolved.gentoo ? { ...resolved, gentoo: { ...resolved.gentoo, keyring: resolve(opts.keyring) } } : resolved;
  const stages = opts.stages ?? stagesFor(profile.base);
  const names = stages.map((s) => s.name);
  for (const requested of [opts.from, opts.only]) {
    if (requested && !names.includes(requested)) {
      throw new HnError('EUSAGE', `unknown stage '${requested}' for profile ${profile.name}; stages: ${names.join(', ')}`);
    }
  }
  checkFactOrder(stages);
  // The frozen plan: the profile and every path, computed here once.
  const paths = buildPaths(profile, opts);
  const buildDir = paths.build;
  // The key is unlocked and checked before any work: a wrong passphrase is one line now, not after the build.
  const publishingKey = opts.signingKey ? await publishingKeyOf(opts.signingKey) : undefined;
  const ctx: BuildContext = {
    publishingKey,
    profile: deepFreeze(profile),
    paths,
    repoDir: paths.repo,
    buildDir,
    cacheDir: paths.cache,
    outputDir: paths.output,
    stack: new ResourceStack(),
    dryRun: Boolean(opts.dryRun),
  };
  const cache = new StageCache(opts.cacheDir);
  const outcomes: StageOutcome[] = stages.map((s) => ({ name: s.name, kind: s.kind, status: 'not-run', seconds: 0 }));
  const outcome = (name: string) => outcomes.find((o) => o.name === name)!;
  const result: BuildResult = { profile: profile.name, ok: false, stages: outcomes, recovered: [], cleaned: [] };

  const abort = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (abort.signal.aborted) return;
    abort.abort(new InterruptedError(signal));
    killRunningCommands();
  };
  const sigint = () => onSignal('SIGINT');
  const sigterm = () => onSignal('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);

  const started = Date.now();
  // The checkout as the build starts: the code that runs, even if it is edited meanwhile.
  const revision = ctx.dryRun ? Promise.resolve(undefined) : gitRevision(ctx.repoDir);
  revision.catch(() => undefined); // awaited (and any bug surfaced) at publishing
  let failure: unknown;
  try {
    if (!ctx.dryRun) {
      const lock = await acquireBuildLock(join(buildDir, '.lock'), `profile ${profile.name} in ${opts.cacheDir}`);
      ctx.stack.push('build lock', lock.release);
      // A build killed without unwinding (SIGKILL, OOM) left its commands, mounts and loop
      // devices; ours would stack on top of them. Holding the lock, all of it is a dead build's.
      const recovery = await releaseLeftovers(buildDir);
      result.recovered = recovery.released;
      if (recovery.released.length && opts.progress !== 'silent') {
        const by = lock.deadOwner ? ` (build pid ${lock.deadOwner} died)` : '';
        for (const line of recovery.released) process.stderr.write(`hnforge: released left over${by}: ${line}\n`);
      }
      assertRecovered(recovery, buildDir);
      tagCommandsWith(await buildTagOf(await canonicalBuildDir(buildDir)));
      await mkdir(paths.logs, { recursive: true });
    }
    // 1. Compute stages: cheap or network-bound (a stage3 download), no effect on the image;
    //    they also run in a dry run. Shown with progress like every other stage.
    const computeSteps: Step[] = stages
      .filter((s) => s.kind === 'compute')
      .map((stage) => ({
        title: stage.title,
        run: async (progress) => {
          const t0 = Date.now();
          const io = openStageIO(ctx.dryRun ? '/dev/null' : join(paths.logs, `${stage.name}.log`), abort.signal, progress, stage);
          try {
            Object.assign(ctx, (await asStage(stage, () => stage.run(ctx, io))) ?? {});
            if (!ctx.dryRun) checkProvided(stage, ctx);
          } finally {
            await io.close();
          }
          Object.assign(outcome(stage.name), { status: 'ran', seconds: (Date.now() - t0) / 1000 });
        },
      }));
    await runSteps(computeSteps, ctx.dryRun ? 'silent' : opts.progress);

    // 2. The version, then keys, and where to resume. Only the release stage (and so every key after
    //    it) holds the version: the keys before it do not change with it.
    const work = stages.filter((s) => s.kind !== 'compute');
    const inputsKey = await versionInputsKey(stages, work, ctx);
    result.version = await decideBuildVersion(ctx, opts, cache, inputsKey, work.at(-1)!.name);
    ctx.version = result.version.version;
    const keys = await stageKeys(stages, ctx);
    for (const s of work) outcome(s.name).key = keys.get(s.name);
    const finish = work.at(-1)!;
    const limitName = opts.only ?? opts.from;
    const limit = limitName ? work.findIndex((s) => s.name === limitName) : work.length;
    const finishedInCache = !limitName && (await cache.hasCheckpoint(profile.name, finish.name, keys.get(finish.name)!, true));
    let resumeAt = -1; // index in `work` of the checkpoint stage we restore from
    if (!finishedInCache) {
      for (let i = Math.min(limit, work.length) - 1; i >= 0; i--) {
        const s = work[i]!;
        if (s.checkpoint && (await cache.hasCheckpoint(profile.name, s.name, keys.get(s.name)!))) {
          resumeAt = i;
          break;
        }
      }
    }
    const lastToRun = opts.only ? limit : work.length - 1;

    // 3. Dry run: print the plan and the cache decisions, run nothing.
    if (ctx.dryRun) {
      // The compute stages ran: their plan says what they resolved (keys, stage3 URL).
      for (const s of stages.filter((st) => st.kind === 'compute')) outcome(s.name).plan = s.plan?.(ctx) ?? [];
      work.forEach((s, i) => {
        const o = outcome(s.name);
        if (finishedInCache) o.status = 'cached';
        else if (i > lastToRun) o.status = 'not-run';
        else if (i <= resumeAt && s.kind !== 'attach') o.status = i === resumeAt ? 'restored' : 'cached';
        else {
          o.status = 'would-run';
          o.plan = s.plan?.(ctx) ?? [];
        }
      });
      result.ok = true;
      return result;
    }

    // 4. Restore: the finished image or the newest usable checkpoint.
    const workImage = paths.workImage;
    if (finishedInCache) {
      for (const s of work) {
        Object.assign(ctx, (await cache.loadOutputs(profile.name, s.name, keys.get(s.name)!)) ?? {});
        outcome(s.name).status = 'cached';
      }
      await publish(ctx, cache.checkpointPath(profile.name, finish.name, keys.get(finish.name)!, true), result, started, opts.sidecar ?? true, await revision);
      result.ok = true;
      return result;
    }
    const steps: Step[] = [];
    if (resumeAt >= 0) {
      const s = work[resumeAt]!;
      steps.push({
        title: `restore checkpoint after ${s.name}`,
        run: async () => {
          await cache.restore(profile.name, s.name, keys.get(s.name)!, workImage);
        },
      });
    } else {
      await rm(workImage, { force: true });
    }

    // 5. The stages themselves.
    for (const [i, stage] of work.entries()) {
      if (i > lastToRun) break;
      const key = keys.get(stage.name)!;
      const cached = i <= resumeAt && stage.kind !== 'attach';
      if (cached) {
        Object.assign(ctx, (await cache.loadOutputs(profile.name, stage.name, key)) ?? {});
        outcome(stage.name).status = i === resumeAt ? 'restored' : 'cached';
      }
      steps.push({
        title: stage.title,
        skipReason: cached ? 'cached' : undefined,
        run: async (progress) => {
          const o = outcome(stage.name);
          const t0 = Date.now();
          const io = openStageIO(stageLogFile(paths, i, stage.name), abort.signal, progress, stage);
          try {
            if (abort.signal.aborted) throw abort.signal.reason;
            Object.assign(ctx, (await asStage(stage, () => stage.run(ctx, io))) ?? {});
            if (abort.signal.aborted) throw abort.signal.reason;
            checkProvided(stage, ctx);
            await cache.saveOutputs(profile.name, stage.name, key, cachedFacts(stage, ctx));
            if (stage.checkpoint) {
              progress('saving checkpoint');
              await saveCheckpoint(ctx, cache, stage.name, key);
            }
            o.status = 'ran';
          } catch (e) {
            const err = abort.signal.aborted ? (abort.signal.reason as Error) : e;
            o.status = 'failed';
            o.error = err instanceof Error ? err.message : String(err);
            io.log(`FAILED: ${o.error}`);
            if (err instanceof HnError) err.details.forEach((d) => io.log(`  ${d}`));
            if (opts.keepGoing && stage.optional && !abort.signal.aborted) {
              o.status = 'failed-kept-going';
              return;
            }
            throw err;
          } finally {
            o.seconds = (Date.now() - t0) / 1000;
            await io.close();
          }
        },
      });
    }
    await runSteps(steps, opts.progress);

    if (opts.only) {
      result.ok = true;
      return result;
    }
    result.ok = !outcomes.some((o) => o.status === 'failed-kept-going');
    // An image with a failed (optional) stage is published but never cached as finished.
    const finished = cache.checkpointPath(profile.name, finish.name, keys.get(finish.name)!, true);
    if (result.ok) {
      await cache.saveCheckpoint(profile.name, finish.name, keys.get(finish.name)!, workImage, { byLink: true });
      // The finished image of these inputs has this version now: a rebuild today reuses both.
      await cache.saveVersion(profile.name, inputsKey, ctx.version, keys.get(finish.name)!);
    }
    await publish(ctx, result.ok ? finished : workImage, result, started, opts.sidecar ?? true, await revision);
    await rm(workImage, { force: true });
    await rm(`${workImage}.sha256`, { force: true });
    return result;
  } catch (e) {
    result.ok = false; // a failed publish too: the work image goes
    const err = abort.signal.aborted ? (abort.signal.reason as Error) : e;
    result.error = err instanceof HnError ? { code: err.code, message: err.message, details: err.details } : undefined;
    failure = err;
    throw err;
  } finally {
    process.off('SIGINT', sigint);
    process.off('SIGTERM', sigterm);
    const { released, failed } = await ctx.stack.unwind();
    result.cleaned = released;
    if (released.length && opts.progress !== 'silent') process.stderr.write(`hnforge: released ${released.join(', ')}\n`);
    if (!result.ok && !ctx.dryRun) await rm(paths.workImage, { force: true });
    if (failed.length) {
      // Cleanup that failed is worse than the build failing: say exactly what is left, and keep
      // the reason the build stopped (if it did) in front.
      const lines = failed.map((f) => `could not release ${f.what}: ${f.error}`);
      const first = failure instanceof Error ? `${failure.message}; then ` : '';
      throw new HnError('ECLEANUP', `${first}cleanup incomplete: ${lines.join('; ')}`, {
        details: [...(failure instanceof HnError ? failure.details : []), ...lines],
        exitCode: failure instanceof HnError ? failure.exitCode : undefined,
      });
    }
  }
}

/**
 * The key that names everything a build's image is made of except its version: the last key,
 * computed without one. Two builds with the same such key differ only in the version they carry
 * (a signing key, for one, is in it: its keyring goes into the image).
 */
async function versionInputsKey(stages: StageDef[], work: StageDef[], ctx: BuildContext): Promise<string> {
  const keys = await stageKeys(stages, { ...ctx, version: undefined });
  const last = work.at(-1);
  return last ? keys.get(last.name)! : CHAIN_ROOT;
}

/**
 * --version, else the version these inputs got today (only while that very image is still the
 * cached finished one and no --from/--only asks for a rebuild: a rebuilt image differs, if only
 * in its build time, and a published version must name one content), else the next YYYYMMDD.N
 * after the published report's and the store's versions.
 */
async function decideBuildVersion(ctx: BuildContext, opts: BuildOptions, cache: StageCache, inputsKey: string, finish: string): Promise<VersionDecision> {
  const now = opts.now ?? new Date();
  if (opts.version !== undefined) return decideVersion({ explicit: opts.version, known: [], now });
  const known: string[] = [];
  const published = await reportVersion(outputFiles(join(ctx.outputDir, ctx.profile.image.fileName)).json);
  if (published) known.push(published);
  if (opts.store) known.push(...(await storeVersions(opts.store, ctx.profile.name)));
  const earlier = opts.from || opts.only ? undefined : await cache.loadVersion(ctx.profile.name, inputsKey);
  const reusable = earlier && (await cache.hasCheckpoint(ctx.profile.name, finish, earlier.finishedKey, true)) ? earlier.version : undefined;
  return decideVersion({ known, now, reusable });
}

/** Freezes the mounted image (if any) so the snapshot is consistent, then copies it into the cache. */
async function saveCheckpoint(ctx: BuildContext, cache: StageCache, stage: string, key: string) {
  const image = ctx.paths.workImage;
  if (ctx.root) {
    // Sync, then trim: blocks freed inside the image (deleted lists, dpkg temp files) would
    // otherwise still be allocated in the file and be copied into the snapshot, and ext4 only
    // trims what a committed journal transaction has freed (the build mounts with commit=60).
    await run(cmd.sync());
    await run(cmd.fstrim(ctx.root));
    await run(cmd.fsfreeze(ctx.root, true));
    try {
      await cache.saveCheckpoint(ctx.profile.name, stage, key, image);
    } finally {
      await run(cmd.fsfreeze(ctx.root, false));
    }
  } else {
    await cache.saveCheckpoint(ctx.profile.name, stage, key, image);
  }
}

/** Hands the finished image to the publish part (pipeline/publish/) with its report. */
async function publish(ctx: BuildContext, image: string, result: BuildResult, started: number, withSidecar: boolean, gitRevision: string | undefined) {
  const inputsDigest = result.stages.at(-1)?.key ?? '';
  const published = await publishImage({
    source: image,
    dir: ctx.outputDir,
    fileName: ctx.profile.image.fileName,
    // The sidecar names what the node is given; the version is what it shows and logs.
    version: ctx.version ?? `${ctx.profile.name}-${inputsDigest}`,
    sidecar: withSidecar,
    startedAt: started,
    report: {
      profile: ctx.profile.name,
      base: ctx.profile.base,
      version: ctx.version!,
      gitRevision,
      sources: buildSources(ctx),
      publishingKey: ctx.publishingKey ? { path: IMAGE_PATHS.publishingKeyring, fingerprints: ctx.publishingKey.fingerprints } : undefined,
      files: ctx.imageFiles ?? [],
      inputsDigest,
      builtAt: new Date().toISOString(),
      packages: ctx.installedPackages ?? [],
      stages: result.stages.map(({ name, status, seconds }) => ({ name, status, seconds })),
    },
  });
  result.image = published.image;
  result.report = published.report;
}
