// Fail-fast resolution: before the long emerge, `emerge --pretend` of the same
// set, its output read for every problem portage reports, and one error that
// lists them all with the profile field that fixes each. The message formats
// are portage's (lib/_emerge/depgraph.py: _display_autounmask,
// _show_unsatisfied_dep, show_masked_packages; resolver/output.py: blockers;
// resolver/slot_collision.py: slot conflicts), read from its source; the
// parser is ours.

export type ResolveKind = 'keyword' | 'missing-keyword' | 'mask' | 'use' | 'required-use' | 'license' | 'blocker' | 'slot-conflict' | 'missing';

export interface ResolveProblem {
  kind: ResolveKind;
  /** The package or atom portage named. */
  what: string;
  /** What portage said about it (keyword, USE flags, licences, constraint, blocker). */
  detail: string;
  /** The profile field that changes it. */
  field: string;
}

const FIELD: Record<ResolveKind, string> = {
  keyword: 'gentoo.acceptKeywords',
  'missing-keyword': 'gentoo.acceptKeywords (with "**"), or drop the package from gentoo.packages',
  mask: 'gentoo.packages (pin a version that is not masked; hnforge writes no package.unmask)',
  use: 'gentoo.use',
  'required-use': 'gentoo.use',
  license: 'gentoo.licenses',
  blocker: 'gentoo.packages (drop one of the blocking packages) or gentoo.use',
  'slot-conflict': 'gentoo.use or gentoo.packages (pin the versions)',
  missing: 'gentoo.packages (no such package in the repositories) ',
};

const problem = (kind: ResolveKind, what: string, detail: string): ResolveProblem => ({ kind, what, detail, field: FIELD[kind].trim() });

/** `=cat/pkg-1.0 ~amd64`, `>=cat/pkg-1.0:0 flag -flag`: the atom and the rest. */
function atomLine(line: string): { atom: string; rest: string } | undefined {
  const m = /^([<>=~]*[A-Za-z0-9][\w+.-]*\/[\w+.-]+(?::[\w+./-]+)?)\s*(.*)$/.exec(line.trim());
  return m ? { atom: m[1]!, rest: m[2]!.trim() } : undefined;
}

/** Kinds of "masked by:" reasons, as _getmaskingstatus words them ("~amd64 keyword", "missing keyword", "package.mask", "FOO license(s)"). */
function maskKind(reason: string): ResolveKind {
  if (/missing keyword|\*\* keyword/.test(reason)) return 'missing-keyword';
  if (/keyword/.test(reason)) return 'keyword';
  if (/license/.test(reason)) return 'license';
  if (/REQUIRED_USE|required_use/.test(reason)) return 'required-use';
  return 'mask';
}

/**
 * Reads `emerge --pretend` output (stdout and stderr interleaved, no colour)
 * and returns every problem, each once, in the order portage reported them.
 */
export function parseEmergePretend(output: string): ResolveProblem[] {
  const lines = output.split('\n').map((l) => l.replace(/\x1b\[[0-9;]*m/g, '').replace(/\s+$/, ''));
  const out: ResolveProblem[] = [];
  const changes: Record<string, ResolveKind> = { 'keyword changes': 'keyword', 'mask changes': 'mask', 'USE changes': 'use', 'license changes': 'license' };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;

    // _display_autounmask: "The following <kind> are necessary to proceed:" + atom lines until a blank line.
    const autounmask = /^The following (keyword changes|mask changes|USE changes|license changes) are necessary to proceed:$/.exec(line);
    if (autounmask) {
      const kind = changes[autounmask[1]!]!;
      let j = i + 1;
      if (/^\s*\(see ".*" in the portage\(5\) man page/.test(lines[j] ?? '')) j++;
      for (; j < lines.length && lines[j]!.trim() !== ''; j++) {
        const l = lines[j]!.trim();
        if (l.startsWith('#')) continue;
        const a = atomLine(l);
        if (!a) break;
        const k = kind === 'keyword' && a.rest.split(/\s+/).includes('**') ? 'missing-keyword' : kind;
        out.push(problem(k, a.atom, a.rest || (kind === 'mask' ? 'masked' : '')));
      }
      i = j - 1;
      continue;
    }

    // show_masked_packages after "All ebuilds that could satisfy "X" have been masked."
    const masked = /^!!! All ebuilds that could satisfy "(.+)" have been masked\.$/.exec(line);
    if (masked) {
      let j = i + 1;
      for (; j < lines.length; j++) {
        const l = lines[j]!;
        if (l.startsWith('!!! One of the following')) continue;
        const m = /^- (\S+) \(masked by: (.+)\)$/.exec(l);
        if (!m) break;
        out.push(problem(maskKind(m[2]!), m[1]!, `masked by: ${m[2]}`));
      }
      if (j === i + 1 || !out.length) out.push(problem('mask', masked[1]!, 'all ebuilds masked'));
      i = j - 1;
      continue;
    }

    // REQUIRED_USE: "The ebuild selected to satisfy "X" has unmet requirements." then "- cpv USE=..." and the constraints.
    const unmet = /^!!! The ebuild selected to satisfy "(.+)" has unmet requirements\.$/.exec(line);
    if (unmet) {
      const pkg = /^- (\S+)/.exec(lines[i + 1] ?? '')?.[1] ?? unmet[1]!;
      let constraint = '';
      for (let j = i + 1; j < Math.min(lines.length, i + 8); j++) {
        if (/The following REQUIRED_USE flag constraints are unsatisfied:/.test(lines[j]!)) {
          constraint = (lines[j + 1] ?? '').trim();
          break;
        }
      }
      out.push(problem('required-use', pkg, `REQUIRED_USE unsatisfied: ${constraint || '(see the log)'}`));
      continue;
    }

    const noUse = /^emerge: there are no ebuilds built with USE flags to satisfy "(.+)"\.$/.exec(line);
    if (noUse) {
      out.push(problem('use', noUse[1]!, 'no ebuild with the needed USE flags'));
      continue;
    }
    const missing = /^emerge: there are no (?:ebuilds|binary packages) to satisfy "(.+)"\.$/.exec(line);
    if (missing) {
      out.push(problem('missing', missing[1]!, 'no ebuild provides it'));
      continue;
    }

    // resolver/output.py: unsatisfied blockers are "[blocks B ...]" (lowercase b: resolved by portage itself).
    const blocker = /^\[blocks B\s*\]\s+(\S+)\s+\((.+)\)$/.exec(line);
    if (blocker) {
      out.push(problem('blocker', blocker[1]!, blocker[2]!.replace(/^"[^"]*" /, '')));
      continue;
    }

    // resolver/slot_collision.py: "!!! Multiple package instances within a single package slot have been pulled", slot atoms after.
    if (/^!!! Multiple package instances within a single package slot have been pulled$/.test(line)) {
      let j = i + 1;
      if (/^!!! into the dependency graph/.test(lines[j] ?? '')) j++;
      for (; j < lines.length; j++) {
        const l = lines[j]!;
        if (l.trim() === '') continue;
        const slot = /^([A-Za-z0-9][\w+.-]*\/[\w+.-]+:\S+)(?: for \S+)?$/.exec(l);
        if (!slot) break;
        const pulled: string[] = [];
        for (j++; j < lines.length && (lines[j]!.trim() === '' || /^\s/.test(lines[j]!)); j++) {
          const p = /^ {2}\((\S+?)(?::[^)]*)?\)|^ {2}(\S+)/.exec(lines[j]!);
          if (p && !lines[j]!.startsWith('    ')) pulled.push(p[1] ?? p[2]!);
        }
        j--;
        out.push(problem('slot-conflict', slot[1]!, pulled.length ? `pulled in: ${pulled.join(', ')}` : 'slot conflict'));
      }
      i = j - 1;
      continue;
    }
  }
  const seen = new Set<string>();
  return out.filter((p) => {
    const k = `${p.kind} ${p.what} ${p.detail}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** One line: how many problems of each kind, and the fields to change. */
export function summarizeProblems(problems: ResolveProblem[]): string {
  const byKind = new Map<ResolveKind, number>();
  for (const p of problems) byKind.set(p.kind, (byKind.get(p.kind) ?? 0) + 1);
  const kinds = [...byKind].map(([k, n]) => `${n} ${k}`).join(', ');
  const fields = [...new Set(problems.map((p) => p.field.split(' ')[0]!))].join(', ');
  return `emerge --pretend found ${problems.length} problem(s) (${kinds}); change ${fields} in the profile (each listed below and in the stage log)`;
}

export const formatProblem = (p: ResolveProblem): string => `${p.kind}: ${p.what} ${p.detail} -> ${p.field}`;
