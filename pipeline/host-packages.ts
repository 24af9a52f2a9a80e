// The host's Debian packages: one list per purpose, read by everyone (the
// build's preflight and auto-install, `hnforge provision`, `npm test`, the
// Dockerfile's test), and the install of what is missing, so a fresh machine
// needs no set-up step.

import { HnError } from './errors.ts';
import { packagesOfTools, toolsOf } from './host-tools.ts';
import { missingTools } from './preflight.ts';
import { PROVISION_COMMANDS } from './provision.ts';
import { entry, programsOf } from './seam/catalogue.ts';
import { run } from './seam/run.ts';
import { STAGES, stagesFor } from './stages-table.ts';
import type { PackagePurpose } from './package-purposes.ts';
import { FULL_TEST_PACKAGES, QUICK_TEST_PACKAGES } from './test-packages.ts';

const MINUTE = 60_000;

export { PACKAGE_PURPOSES, type PackagePurpose } from './package-purposes.ts';
type Base = 'debian' | 'gentoo';

/** A build fetches over https (git of a pinned Gentoo commit): not a program, so not derived. */
const BUILD_SUPPORT_PACKAGES = ['ca-certificates'];

function known(tools: string[], what: string): string[] {
  const { packages, unknown } = packagesOfTools(tools);
  // A catalogue entry naming a program HOST_TOOL_PACKAGES does not know is a bug (a unit test guards it).
  if (unknown.length) throw new Error(`${what} runs ${unknown.join(', ')}, which HOST_TOOL_PACKAGES maps to no Debian package`);
  return packages;
}

/** Packages a build of `base` (default: every base) needs on the host. */
export function buildPackages(base?: Base): string[] {
  const stages = base ? stagesFor(base) : [...STAGES];
  return [...new Set([...known(toolsOf(stages), `the ${base ?? 'build'} stages`), ...BUILD_SUPPORT_PACKAGES])].sort();
}

export const provisionPackages = (): string[] => known(programsOf(PROVISION_COMMANDS), 'hnforge provision');

/** The list for a purpose. `test`: everything the full suite runs (all bases, provisioning, qemu). */
export function hostPackages(purpose: PackagePurpose, base?: Base): string[] {
  const lists: Record<PackagePurpose, () => string[]> = {
    build: () => buildPackages(base),
    provision: provisionPackages,
    quick: () => Object.keys(QUICK_TEST_PACKAGES),
    test: () => [...buildPackages(), ...provisionPackages(), ...Object.keys(QUICK_TEST_PACKAGES), ...Object.keys(FULL_TEST_PACKAGES)],
  };
  return [...new Set(lists[purpose]())].sort();
}

const APT_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive' };
const aptCmd = {
  install: entry('apt-get', (packages: string[]) => ({
    file: 'apt-get', args: ['install', '-y', '-q', '--no-install-recommends', ...packages], env: APT_ENV, timeoutMs: 15 * MINUTE,
  })),
  update: entry('apt-get', () => ({ file: 'apt-get', args: ['update', '-q'], env: APT_ENV, timeoutMs: 10 * MINUTE })),
  /** One line per known package: "NAME STATUS"; unknown names only print to stderr. */
  status: entry('dpkg-query', (packages: string[]) => ({
    file: 'dpkg-query', args: ['-W', '-f', '${Package} ${Status}\\n', ...packages], env: APT_ENV, timeoutMs: MINUTE,
  })),
};

/** Which of `packages` are not installed (dpkg's view: ovmf has no program to look for). */
export async function missingPackages(packages: readonly string[]): Promise<string[]> {
  if (!packages.length) return [];
  // Exit 1 when some name is not installed at all: that is an answer, not a failure.
  const { stdout } = await run(aptCmd.status([...packages]), { capture: true, okExitCodes: [1] });
  const installed = new Set(stdout.split('\n').filter((l) => / install ok installed$/.test(l)).map((l) => l.split(' ')[0]));
  return packages.filter((p) => !installed.has(p));
}

async function aptInstall(packages: string[], say: (line: string) => void): Promise<void> {
  say(`installing host packages: ${packages.join(' ')}`);
  try {
    await run(aptCmd.install(packages));
  } catch {
    // A fresh machine may have no package lists yet.
    await run(aptCmd.update());
    await run(aptCmd.install(packages));
  }
}

/**
 * The build's install: packages of the missing host tools, when root. Not
 * root: nothing here; the preflight names each missing tool and its package.
 */
export async function ensureHostPackages(tools: string[], say: (line: string) => void): Promise<void> {
  const missing = await missingTools(tools);
  const { packages } = packagesOfTools(missing);
  if (!packages.length || process.getuid?.() !== 0) return;
  await aptInstall(packages, say);
}

/** Installs whatever of `packages` is missing; not root and something missing: one line, exit 1. */
export async function ensurePackages(packages: readonly string[], say: (line: string) => void, isRoot = process.getuid?.() === 0): Promise<void> {
  const missing = await missingPackages(packages);
  if (!missing.length) return;
  if (!isRoot) {
    throw new HnError('EPACKAGES', `missing Debian packages: ${missing.join(' ')}; install them as root: apt-get install --no-install-recommends ${missing.join(' ')}`);
  }
  await aptInstall(missing, say);
}
