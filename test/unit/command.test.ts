import { describe, expect, it } from 'vitest';
import { cmd, formatCommand } from '../../pipeline/seam/command.ts';
import { chrootMounts } from '../../stages/chroot.ts';
import { mmdebstrapCommand } from '../../stages/debian-bootstrap.ts';
import { aptInstallCommand } from '../../stages/debian-packages.ts';

describe('argv builders', () => {
  it('mkfs.ext4 targets a regular file with a label and lazy init', () => {
    expect(cmd.mkfs('ext4', '/b/img', 'hn-root')).toMatchObject({
      file: 'mkfs.ext4',
      args: ['-F', '-q', '-L', 'hn-root', '-E', 'lazy_itable_init=1,lazy_journal_init=1,discard', '/b/img'],
    });
    expect(cmd.mkfs('btrfs', '/b/img', 'x').args).toEqual(['-f', '-q', '-L', 'x', '/b/img']);
  });

  it('mount puts options before source and target', () => {
    expect(cmd.mount('/dev/loop3', '/r', { type: 'ext4', options: ['noatime', 'barrier=0'] }).args).toEqual([
      '-t', 'ext4', '-o', 'noatime,barrier=0', '/dev/loop3', '/r',
    ]);
    expect(cmd.mount('/dev', '/r/dev', { bind: true }).args).toEqual(['--bind', '/dev', '/r/dev']);
  });

  it('losetup and umount', () => {
    expect(cmd.losetupAttach('/b/img').args).toEqual(['--find', '--show', '/b/img']);
    expect(cmd.losetupDetach('/dev/loop0').args).toEqual(['--detach', '/dev/loop0']);
    expect(cmd.umount('/r', { recursive: true }).args).toEqual(['--recursive', '/r']);
  });

  it('chroot runs with a clean environment and a timeout', () => {
    const c = cmd.chroot('/r', ['apt-get', 'install', 'x'], 1000, { INITRD: 'No' });
    expect(c.args).toEqual(['/r', 'apt-get', 'install', 'x']);
    expect(c.env).toMatchObject({ PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive', INITRD: 'No' });
    expect(c.timeoutMs).toBe(1000);
  });

  it('every command has a timeout', () => {
    for (const c of [cmd.truncate('/x', 1), cmd.fstrim('/r'), cmd.e2fsck('/x'), cmd.copySparse('/a', '/b'), cmd.sync()]) {
      expect(c.timeoutMs).toBeGreaterThan(0);
    }
  });

  it('formatCommand quotes what a shell would split', () => {
    expect(formatCommand({ file: 'echo', args: ['a b', "it's", 'plain'] })).toBe(`echo 'a b' 'it'\\''s' plain`);
  });

  it('chroot mounts: proc, sys, dev, dev/pts in that order, under the root', () => {
    expect(chrootMounts('/r').map((m) => m.target)).toEqual(['/r/proc', '/r/sys', '/r/dev', '/r/dev/pts']);
  });

  it('mmdebstrap goes through the host package cache and keeps lists', () => {
    const c = mmdebstrapCommand({ suite: 'bookworm', mirror: 'http://m/debian', root: '/r', variant: 'minbase', components: ['main'], aptCache: '/c/apt' });
    expect(c.args.slice(-3)).toEqual(['bookworm', '/r', 'http://m/debian']);
    expect(c.args).toContain('--setup-hook=sync-in /c/apt /var/cache/apt/archives');
    expect(c.args).toContain('--customize-hook=sync-out /var/cache/apt/archives /c/apt');
    expect(c.args).toContain('--variant=minbase');
  });

  it('apt install: no recommends unless asked, no Debian initramfs', () => {
    const c = aptInstallCommand('/r', ['lxc', 'docker.io'], false);
    expect(c.args.slice(-3)).toEqual(['--no-install-recommends', 'lxc', 'docker.io']);
    expect(c.env?.INITRD).toBe('No');
    expect(aptInstallCommand('/r', ['x'], true).args).toContain('--install-recommends');
  });
});
