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

/** Collects the packages emerge reported, for the build report. */
export class EmergeTracker {
  readonly merged: EmergeProgress[] = [];
  constructor(private readonly onProgress: (text: string) => void) {}
  line = (line: string): void => {
    const p = parseEmergeLine(line);
    if (!p) return;
    this.merged.push(p);
    this.onProgress(progressText(p));
  };
}
