// Reading emerge's output for the progress display. emerge prints one line
// per package as it starts it:
//   >>> Emerging (3 of 40) app-containers/lxc-6.0.4::gentoo
//   >>> Emerging binary (4 of 40) sys-apps/iproute2-6.12.0::gentoo
// The "Installing" lines that follow each carry the same counter.

export interface EmergeProgress {
  n: number;
  of: number;
  pkg: string;
  binary: boolean;
}

const EMERGING = /^>>> Emerging (binary )?\((\d+) of (\d+)\) (\S+)/;

export function parseEmergeLine(line: string): EmergeProgress | undefined {
  const m = EMERGING.exec(line.trim());
  if (!m) return undefined;
  return { binary: Boolean(m[1]), n: Number(m[2]), of: Number(m[3]), pkg: m[4]!.replace(/::\S+$/, '') };
}

export function progressText(p: EmergeProgress): string {
  return `package ${p.n} of ${p.of}: ${p.pkg}${p.binary ? ' (binary)' : ''}`;
}

/** Collects the packages emerge reported, for the build report, and the lines that explain a failure. */
export class EmergeTracker {
  readonly merged: EmergeProgress[] = [];
  readonly notable: string[] = [];
  constructor(private readonly onProgress: (text: string) => void) {}
  line = (line: string): void => {
    const p = parseEmergeLine(line);
    if (p) {
      this.merged.push(p);
      this.onProgress(progressText(p));
      return;
    }
    if (NOTABLE.some((re) => re.test(line)) && this.notable.length < 50) this.notable.push(line.trim());
  };
}

const NOTABLE = [
  /\* ERROR: \S+ failed \(\w+ phase\)/,
  /^!!! All ebuilds that could satisfy/,
  /^emerge: there are no (ebuilds|binary packages) to satisfy/,
  /^The following (keyword|license|USE) changes are necessary/,
  /^!!! Multiple package instances within a single package slot/,
  /^!!! The following update\(s\) have been skipped due to unsatisfied dependencies/,
  /^!!! Fetch failed for/,
  /^!!! .*signature/i,
];

/**
 * One line saying why emerge failed and what to do, from the lines it printed
 * (the failed package and phase, a keyword or licence change it wants, an
 * atom nothing satisfies), or undefined if nothing recognisable was printed.
 */
export function explainEmergeFailure(notable: readonly string[]): string | undefined {
  for (const l of notable) {
    const m = /\* ERROR: (\S+) failed \((\w+) phase\)/.exec(l);
    if (m) return `emerge failed building ${m[1]!.replace(/::\S+$/, '')} (${m[2]} phase); its build log is named in the stage log`;
  }
  for (const l of notable) {
    const m = /^The following (keyword|license|USE) changes are necessary/.exec(l);
    if (m) {
      const field = m[1] === 'keyword' ? 'gentoo.acceptKeywords' : m[1] === 'license' ? 'gentoo.licenses' : 'gentoo.use';
      return `emerge needs ${m[1]} changes it was not allowed to make; add them to ${field} in the profile (see the stage log)`;
    }
  }
  for (const l of notable) {
    if (/no (ebuilds|binary packages) to satisfy|All ebuilds that could satisfy/.test(l)) {
      return `emerge found nothing to satisfy an atom (${l.replace(/^.*satisfy /, '').slice(0, 80)}); check gentoo.packages and the pinned repository`;
    }
  }
  for (const l of notable) {
    if (/^!!! Fetch failed for/.test(l)) return `emerge could not fetch a distfile (${l.slice(0, 100)}); check the network or put the file in the distfiles cache`;
    if (/signature/i.test(l)) return `emerge refused a package signature (${l.slice(0, 100)}); check getuto and the binhost`;
  }
  return undefined;
}
