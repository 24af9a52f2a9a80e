// emerge --pretend output read for every problem at once (pipeline/gentoo/resolve.ts),
// on our own fixtures written to portage's message formats (emerge-pretend/README.md).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatProblem, parseEmergePretend, summarizeProblems } from '../../pipeline/gentoo/resolve.ts';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, 'emerge-pretend', name), 'utf8');
const brief = (text: string) => parseEmergePretend(text).map((p) => `${p.kind} ${p.what} | ${p.detail} | ${p.field.split(' ')[0]}`);

describe('emerge --pretend problems', () => {
  it('a clean plan has none', () => {
    expect(parseEmergePretend(fixture('clean.txt'))).toEqual([]);
  });

  it('reads every autounmask proposal: keywords (and missing ones), USE, licences', () => {
    expect(brief(fixture('autounmask.txt'))).toEqual([
      'keyword =dev-java/maven-bin-3.9.9 | ~amd64 | gentoo.acceptKeywords',
      'missing-keyword =app-misc/nothing-here-9999 | ** | gentoo.acceptKeywords',
      'use >=app-emulation/qemu-9.1.2 | spice usbredir | gentoo.use',
      'license >=sys-kernel/linux-firmware-20241110 | linux-fw-redistributable no-source-code | gentoo.licenses',
    ]);
  });

  it('reads masked packages with their reasons', () => {
    expect(brief(fixture('masked.txt'))).toEqual([
      'keyword net-fs/xtreemfs-1.6.0_p20241007::hnforge | masked by: ~amd64 keyword | gentoo.acceptKeywords',
      'missing-keyword net-fs/xtreemfs-1.5.1::hnforge | masked by: package.mask, missing keyword | gentoo.acceptKeywords',
    ]);
  });

  it('reads REQUIRED_USE violations (the reduced constraint) and atoms nothing provides', () => {
    expect(brief(fixture('required-use.txt'))).toEqual([
      'required-use app-emulation/qemu-9.1.2::gentoo | REQUIRED_USE unsatisfied: any-of ( qemu_softmmu_targets_aarch64 qemu_softmmu_targets_x86_64 qemu_user_targets_aarch64 ) | gentoo.use',
      'missing net-fs/nope | no ebuild provides it | gentoo.packages',
    ]);
  });

  it('reads unsatisfied blockers (not the ones portage resolves itself) and slot conflicts', () => {
    expect(brief(fixture('blockers.txt'))).toEqual([
      'blocker app-containers/docker-cli | is soft blocking app-containers/podman-docker-5.2.5 | gentoo.packages',
      'slot-conflict dev-libs/openssl:0 | pulled in: dev-libs/openssl-3.3.2-r2, dev-libs/openssl-1.1.1w | gentoo.use',
    ]);
  });

  it('lists all problems of a run at once, in one line plus one per problem', () => {
    const all = parseEmergePretend([fixture('autounmask.txt'), fixture('masked.txt'), fixture('required-use.txt'), fixture('blockers.txt')].join('\n'));
    expect(all).toHaveLength(10);
    const line = summarizeProblems(all);
    expect(line).not.toContain('\n');
    expect(line).toBe(
      'emerge --pretend found 10 problem(s) (2 keyword, 2 missing-keyword, 1 use, 1 license, 1 required-use, 1 missing, 1 blocker, 1 slot-conflict); change gentoo.acceptKeywords, gentoo.use, gentoo.licenses, gentoo.packages in the profile (each listed below and in the stage log)',
    );
    expect(formatProblem(all[0]!)).toBe('keyword: =dev-java/maven-bin-3.9.9 ~amd64 -> gentoo.acceptKeywords');
  });

  it("reads real portage's output (check-gentoo against the synthetic repository): every expected problem", () => {
    expect(brief(fixture('real-portage-run1.txt'))).toEqual([
      'keyword =app-misc/hn-testing-1.0 | ~amd64 | gentoo.acceptKeywords',
      'license >=app-misc/hn-eula-1.0 | hn-eula | gentoo.licenses',
      'required-use app-misc/hn-required-use-1.0::gentoo | REQUIRED_USE unsatisfied: exactly-one-of ( a b ) | gentoo.use',
    ]);
    expect(brief(fixture('real-portage-run2.txt'))).toEqual([
      'blocker app-misc/hn-block-b | is hard blocking app-misc/hn-block-a-1.0 | gentoo.packages',
      'use >=app-misc/hn-lib-1.0 | feature | gentoo.use',
    ]);
  });

  it('ignores colour codes', () => {
    expect(brief('\x1b[1mThe following \x1b[31mUSE changes\x1b[0m are necessary to proceed:\n>=a/b-1 x\n'.replace(/\x1b\[[0-9;]*m/g, ''))).toEqual(['use >=a/b-1 | x | gentoo.use']);
    expect(brief('The following \x1b[31;01mlicense changes\x1b[39;49;00m are necessary to proceed:\n>=a/b-1 L\n')).toEqual(['license >=a/b-1 | L | gentoo.licenses']);
  });
});
