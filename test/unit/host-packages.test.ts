// Tools are declared once: the host packages of every list are derived from
// the catalogue entries the stages declare, every program has a Debian
// package, the Dockerfile installs exactly the derived list, and a stage
// cannot run a program it did not declare.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HnError } from '../../pipeline/errors.ts';
import { ensurePackages, hostPackages } from '../../pipeline/host-packages.ts';
import { commandsOf, packagesOfTools, toolsOf } from '../../pipeline/host-tools.ts';
import { listProfiles, resolveProfile } from '../../pipeline/profiles.ts';
import { PROVISION_COMMANDS } from '../../pipeline/provision.ts';
import { entry, programsOf } from '../../pipeline/seam/catalogue.ts';
import { cmd } from '../../pipeline/seam/command.ts';
import { UndeclaredCommandError } from '../../pipeline/seam/declared.ts';
import { run } from '../../pipeline/seam/run.ts';
import { asStage, openStageIO } from '../../pipeline/stage-io.ts';
import { STAGES, stagesFor } from '../../pipeline/stages-table.ts';
import { FULL_TEST_PACKAGES, QUICK_TEST_PACKAGES } from '../../pipeline/test-packages.ts';
import { bootInitramfs } from '../../stages/boot-initramfs.ts';
import { repoDir } from '../support/cli.ts';

const profilesDir = join(repoDir, 'profiles');

describe('host tools derived from the declared commands', () => {
  it('every program a stage of any profile can run has a Debian package (every base, every stage)', async () => {
    // Every buildable profile, and every base even where only an abstract profile uses it (gentoo-base).
    const builds = await Promise.all((await listProfiles(profilesDir)).filter((p) => !p.abstract).map(async (p) => ({ name: p.name, base: (await resolveProfile(profilesDir, p.name)).base })));
    expect(builds.length).toBeGreaterThan(0);
    for (const { name, base } of [...builds, { name: 'any debian', base: 'debian' as const }, { name: 'any gentoo', base: 'gentoo' as const }]) {
      for (const stage of stagesFor(base)) {
        const programs = programsOf(stage.commands ?? []);
        expect(packagesOfTools(programs).unknown, `${name}: stage ${stage.name} runs ${programs.join(' ')}`).toEqual([]);
      }
    }
    expect(packagesOfTools(toolsOf(STAGES)).unknown).toEqual([]);
    expect(packagesOfTools(programsOf(PROVISION_COMMANDS)).unknown).toEqual([]);
  });

  it('the tools the fresh machine lacked are derived: depmod and cpio for a Debian build', () => {
    const tools = toolsOf(stagesFor('debian'));
    for (const t of ['depmod', 'cpio', 'gzip', 'mmdebstrap', 'losetup', 'mkfs.ext4', 'e2fsck', 'openssl', 'fsfreeze']) expect(tools).toContain(t);
    expect(hostPackages('build', 'debian')).toEqual(expect.arrayContaining(['kmod', 'cpio', 'mmdebstrap', 'e2fsprogs']));
    // The initramfs's busybox is the image's own, run by its path: nothing to install on the host for it.
    expect(programsOf(bootInitramfs.commands ?? [])).not.toContain('busybox');
    expect(hostPackages('build')).not.toContain('busybox-static');
  });

  it('a stage that declares nothing needs only what the runner itself runs', () => {
    expect(toolsOf([])).toEqual(programsOf(commandsOf([])));
    expect(toolsOf([{ ...bootInitramfs, commands: [] }])).not.toContain('depmod');
  });

  it('the Dockerfile installs exactly the derived build and provisioning packages', async () => {
    const dockerfile = await readFile(join(repoDir, 'Dockerfile'), 'utf8');
    const install = /apt-get install -y --no-install-recommends \\\n([\s\S]*?)&&/.exec(dockerfile)?.[1];
    expect(install, 'no apt-get install list in the Dockerfile').toBeDefined();
    const listed = install!.replace(/\\\n/g, ' ').split(/\s+/).filter(Boolean).sort();
    expect(listed).toEqual([...new Set([...hostPackages('build'), ...hostPackages('provision')])].sort());
  });

  it('test-only packages carry a one-word reason, and the lists nest', () => {
    for (const [pkg, why] of Object.entries({ ...QUICK_TEST_PACKAGES, ...FULL_TEST_PACKAGES })) expect(why, pkg).toMatch(/^[a-z]+$/);
    expect(hostPackages('quick')).toEqual(expect.arrayContaining(['busybox-static', 'gpg', 'gpg-agent']));
    expect(hostPackages('test')).toEqual(expect.arrayContaining([...hostPackages('build'), ...hostPackages('provision'), ...hostPackages('quick'), 'qemu-system-x86', 'ovmf']));
  });

  it('not root and a package missing: one line naming it', async () => {
    const err = await ensurePackages(['coreutils', 'hnforge-no-such-package'], () => {}, false).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HnError);
    expect((err as HnError).message).toBe(
      'missing Debian packages: hnforge-no-such-package; install them as root: apt-get install --no-install-recommends hnforge-no-such-package',
    );
  });
});

describe('a stage runs only the programs it declared', () => {
  const stage = { name: 'demo', commands: [cmd.sync] };

  it('StageIO.run refuses an undeclared program before starting it (an internal error, not a user error)', async () => {
    const io = openStageIO(join(await mkdtemp(join(tmpdir(), 'hn-declared-')), 'demo.log'), new AbortController().signal, () => {}, stage);
    try {
      await expect(io.run(cmd.sync())).resolves.toMatchObject({ exitCode: 0 });
      const err = await io.run({ file: 'true', args: [] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UndeclaredCommandError);
      expect(err).not.toBeInstanceOf(HnError); // the CLI reports non-HnErrors as internal errors, exit 70
      expect((err as Error).message).toMatch(/^stage demo ran 'true' without declaring it/);
    } finally {
      await io.close();
    }
  });

  it('also for helpers that run commands without the StageIO (mountOn, sha256File)', async () => {
    const helper = () => run({ file: 'true', args: [] });
    await expect(asStage(stage, helper)).rejects.toBeInstanceOf(UndeclaredCommandError);
    await expect(asStage({ name: 'demo', commands: [entry('true', () => ({ file: 'true', args: [] }))] }, helper)).resolves.toMatchObject({ exitCode: 0 });
    // Outside a stage nothing is checked (tests, provisioning).
    await expect(helper()).resolves.toMatchObject({ exitCode: 0 });
  });
});
