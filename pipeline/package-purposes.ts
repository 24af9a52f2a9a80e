// What a list of host packages is for (`hnforge host-packages --for ...`). Apart
// from pipeline/host-packages.ts, which computes the lists, so that the command
// line can offer the choices without loading every stage.

export type PackagePurpose = 'build' | 'provision' | 'test' | 'quick';
export const PACKAGE_PURPOSES: readonly PackagePurpose[] = ['build', 'provision', 'test', 'quick'];
