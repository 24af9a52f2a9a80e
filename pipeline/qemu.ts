// Boots a disk image under qemu (q35, OVMF, virtio disk) with the first serial
// port as the console, and reads markers from it. Software emulation (TCG) by
// default: /dev/kvm exists on our CI machines but guests hang under it, so KVM
// is used only when asked and a probe boot proved it works.
//
// Every boot has a hard timeout; qemu runs through the seam (its own process
// group), so a timeout or a stop-at-marker ends exactly the qemu we started.

import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHnError } from './errors.ts';
import { bootCmd } from './seam/boot-commands.ts';
import { run } from './seam/run.ts';

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

export interface BootOptions {
  disk: string;
  /** Serial console is written here, line by line. */
  logFile: string;
  /** Hard limit for the whole qemu run. */
  timeoutMs: number;
  /** Stop qemu (kill by its process group) when a serial line matches (or the function, called on every line in order, says so). */
  stopAt?: RegExp | ((line: string) => boolean);
  memoryMiB?: number;
  kvm?: boolean;
  /** Extra disk images (e.g. an empty disk to prove the hostpart is found by label). */
  extraDisks?: string[];
  /** Disk cache mode (writeback: guest flushes reach the host file). */
  cache?: 'writeback' | 'none' | 'unsafe';
  signal?: AbortSignal;
  /**
   * A network: qemu user networking with restrict=on (the guest reaches
   * nothing), except connections to `guestAddress:guestPort`, each handed to a
   * fresh `command` (stdin/stdout are the connection). Without it: no NIC.
   */
  guestfwd?: { guestAddress: string; guestPort: number; command: string };
}

export interface Marker {
  line: string;
  /** Milliseconds after qemu started. */
  atMs: number;
}

export interface BootResult {
  /** poweroff: the guest turned itself off; stopped: stopAt matched; timeout: hard limit hit. */
  end: 'poweroff' | 'stopped' | 'timeout' | 'error';
  lines: string[];
  /** Serial lines carrying an HN- marker, with their time. */
  markers: Marker[];
  durationMs: number;
  error?: string;
}

export function qemuArgs(disk: string, vars: string, o: Pick<BootOptions, 'memoryMiB' | 'kvm' | 'extraDisks' | 'cache' | 'guestfwd'>): string[] {
  const fwd = o.guestfwd;
  // qemu splits option values at commas: a command holding one would be cut.
  if (fwd && fwd.command.includes(',')) throw new Error(`guestfwd command must not contain a comma: ${fwd.command}`);
  const cache = o.cache ?? 'writeback';
  return [
    '-machine', `q35,accel=${o.kvm ? 'kvm' : 'tcg'}`,
    ...(o.kvm ? ['-cpu', 'host'] : ['-cpu', 'max']),
    '-smp', '1',
    '-m', String(o.memoryMiB ?? 512),
    '-display', 'none',
    // A display adapter gives OVMF a GOP; without one GRUB prints "no suitable video mode" and waits 10 s.
    '-vga', 'std',
    '-monitor', 'none',
    '-serial', 'stdio',
    '-nodefaults',
    '-no-user-config',
    '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
    '-drive', `if=pflash,format=raw,unit=1,file=${vars}`,
    '-drive', `file=${disk},format=raw,if=virtio,cache=${cache}`,
    ...(o.extraDisks ?? []).flatMap((d) => ['-drive', `file=${d},format=raw,if=virtio,cache=${cache}`]),
    ...(fwd
      ? // romfile= (no option ROM): OVMF would otherwise try a network boot first after a reboot (~200 s lost).
        ['-netdev', `user,id=net0,restrict=on,guestfwd=tcp:${fwd.guestAddress}:${fwd.guestPort}-cmd:${fwd.command}`, '-device', 'virtio-net-pci,netdev=net0,romfile=']
      : ['-net', 'none']),
  ];
}

/** One boot: starts qemu, collects the serial console, ends it on poweroff, marker or timeout. */
export async function bootDisk(o: BootOptions): Promise<BootResult> {
  const dir = await mkdtemp(join(tmpdir(), 'hn-qemu-'));
  const vars = join(dir, 'OVMF_VARS.fd');
  await copyFile(OVMF_VARS, vars);
  const log = createWriteStream(o.logFile, { flags: 'a' });
  const lines: string[] = [];
  const markers: Marker[] = [];
  const stop = new AbortController();
  const onOuterAbort = () => stop.abort();
  o.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const t0 = Date.now();
  let stopped = false;
  let end: BootResult['end'] = 'poweroff';
  let error: string | undefined;
  try {
    await run(bootCmd.qemu(qemuArgs(o.disk, vars, o), o.timeoutMs), {
      signal: stop.signal,
      onLine: (raw) => {
        // eslint-disable-next-line no-control-regex
        const line = raw.replace(/\r/g, '').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
        const atMs = Date.now() - t0;
        lines.push(line);
        log.write(`[${(atMs / 1000).toFixed(2).padStart(7)}] ${line}\n`);
        if (/HN-[A-Z]/.test(line)) markers.push({ line, atMs });
        if (!stopped && o.stopAt && (typeof o.stopAt === 'function' ? o.stopAt(line) : o.stopAt.test(line))) {
          stopped = true;
          stop.abort();
        }
      },
    });
  } catch (e) {
    if (stopped) end = 'stopped';
    else if (isHnError(e) && e.code === 'ETIMEOUT') end = 'timeout';
    else {
      end = 'error';
      error = e instanceof Error ? e.message : String(e);
    }
  } finally {
    o.signal?.removeEventListener('abort', onOuterAbort);
    await new Promise<void>((resolve) => log.end(resolve));
    await rm(dir, { recursive: true, force: true });
  }
  return { end, lines, markers, durationMs: Date.now() - t0, ...(error ? { error } : {}) };
}

let kvmVerdict: boolean | undefined;

/**
 * KVM only if HNFORGE_QEMU_KVM=1 and a probe boot of `disk` reaches `marker`
 * within `timeoutMs`; otherwise software emulation. The verdict is cached.
 */
export async function useKvm(disk: string, marker: RegExp, timeoutMs = 30_000): Promise<boolean> {
  if (kvmVerdict !== undefined) return kvmVerdict;
  if (process.env.HNFORGE_QEMU_KVM !== '1') return (kvmVerdict = false);
  const dir = await mkdtemp(join(tmpdir(), 'hn-kvm-probe-'));
  try {
    const probeDisk = join(dir, 'probe.img');
    await run({ file: 'cp', args: ['--sparse=always', disk, probeDisk], timeoutMs: 120_000 });
    const r = await bootDisk({ disk: probeDisk, logFile: join(dir, 'serial.log'), timeoutMs, stopAt: marker, kvm: true });
    kvmVerdict = r.end === 'stopped';
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return kvmVerdict;
}
