// Facts a stage needs and provides: the real tables are in order, and both
// checks catch what they exist for.
import { describe, expect, it } from 'vitest';
import type { BuildContext } from '../../pipeline/context.ts';
import { cachedFacts, checkFactOrder, checkProvided } from '../../pipeline/facts.ts';
import type { StageDef } from '../../pipeline/stage.ts';
import { STAGES, stagesFor } from '../../pipeline/stages-table.ts';

const stage = (name: string, needs: StageDef['needs'] = [], provides: StageDef['provides'] = []): StageDef => ({
  name, title: name, kind: 'mutate', bases: ['debian'], needsRoot: false, version: 1, needs, provides, run: async () => {},
});

describe('stage facts', () => {
  it('every stage of both bases needs only what an earlier stage of its base provides', () => {
    expect(() => checkFactOrder(stagesFor('debian'))).not.toThrow();
    expect(() => checkFactOrder(stagesFor('gentoo'))).not.toThrow();
    // The Debian initramfs needs the kernel layout chose: moving it before layout is caught.
    const debian = stagesFor('debian');
    const swapped = debian.filter((s) => s.name !== 'boot-initramfs');
    swapped.splice(swapped.findIndex((s) => s.name === 'layout'), 0, debian.find((s) => s.name === 'boot-initramfs')!);
    expect(() => checkFactOrder(swapped)).toThrow(/boot-initramfs needs kernel, which no earlier stage provides/);
  });

  it('a stage that does not provide what it declares is caught after it runs', () => {
    const s = stage('layout', [], ['kernel']);
    expect(() => checkProvided(s, {} as BuildContext)).toThrow(/layout finished without providing kernel/);
    expect(() => checkProvided(s, { kernel: { file: 'vmlinuz-1', version: '1' } } as BuildContext)).not.toThrow();
  });

  it('held resources are never cached with a stage', () => {
    const s = stage('image-mount', [], ['root', 'loopDevice', 'kernel']);
    const ctx = { root: '/r', loopDevice: '/dev/loop0', kernel: { file: 'k', version: '1' } } as BuildContext;
    expect(cachedFacts(s, ctx)).toEqual({ kernel: { file: 'k', version: '1' } });
  });

  it('every stage that changes the image says what it needs (none reads the context blindly)', () => {
    const blind = STAGES.filter((s) => s.kind !== 'compute' && s.name !== 'image-create' && s.name !== 'image-mount' && !(s.needs ?? []).length);
    expect(blind.map((s) => s.name)).toEqual([]);
  });
});
