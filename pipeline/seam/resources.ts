// Every resource the build acquires (loop device, mount, bind mount, chroot
// processes) is pushed here at the moment it is acquired, with the function
// that releases it. Unwinding releases in reverse order and keeps going past a
// failed release, so one stuck umount does not leave the loop device attached.

export interface Held {
  readonly what: string;
  /** Release now (e.g. the seal stage unmounts); unwinding will skip it later. */
  release(): Promise<void>;
}

interface Entry {
  what: string;
  release: () => Promise<void>;
  done: boolean;
}

export class ResourceStack {
  private entries: Entry[] = [];

  async acquire<T>(what: string, make: () => Promise<T>, release: (value: T) => Promise<void>): Promise<T & {}> {
    const value = await make();
    this.push(what, () => release(value));
    return value as T & {};
  }

  push(what: string, release: () => Promise<void>): Held {
    const entry: Entry = { what, release, done: false };
    this.entries.push(entry);
    return {
      what,
      release: async () => {
        if (entry.done) return;
        await entry.release();
        entry.done = true;
        this.entries = this.entries.filter((e) => e !== entry);
      },
    };
  }

  get held(): string[] {
    return this.entries.filter((e) => !e.done).map((e) => e.what);
  }

  /** Releases everything still held, newest first. Returns what was released and what failed. */
  async unwind(): Promise<{ released: string[]; failed: { what: string; error: string }[] }> {
    const released: string[] = [];
    const failed: { what: string; error: string }[] = [];
    while (this.entries.length) {
      const entry = this.entries.pop()!;
      if (entry.done) continue;
      try {
        await entry.release();
        entry.done = true;
        released.push(entry.what);
      } catch (e) {
        failed.push({ what: entry.what, error: e instanceof Error ? e.message : String(e) });
      }
    }
    return { released, failed };
  }
}
