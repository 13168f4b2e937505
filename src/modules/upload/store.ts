/**
 * Uploaded files on disk, under <dataDir>/upload/<account>/<slot id>/:
 * `data` (the bytes) and `meta.json` (name, size, type, when stored). The
 * account directory is the hex of the username, so any local part is a safe
 * directory name, and deleting an account is one `rm -r`.
 *
 * The index (slot id -> entry) and each account's usage live in memory and
 * are rebuilt from the directory at start. Pending slots (handed out, not yet
 * uploaded) are memory only: after a restart a client asks for a new slot.
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface StoredMeta {
  name: string;
  size: number;
  type: string | undefined;
  /** Milliseconds since the epoch. */
  created: number;
}

export interface Entry extends StoredMeta {
  id: string;
  user: string;
  state: 'pending' | 'uploading' | 'stored';
  /** The bearer token a PUT must carry (pending slots only). */
  putToken: string;
  /** Pending slots: when the PUT slot lapses. */
  slotExpires: number;
}

export function userDir(user: string): string {
  return Buffer.from(user, 'utf8').toString('hex');
}

export class UploadStore {
  readonly entries = new Map<string, Entry>();
  private readonly usage = new Map<string, { bytes: number; pending: number }>();

  constructor(readonly root: string) {}

  dir(e: { user: string; id: string }): string {
    return path.join(this.root, userDir(e.user), e.id);
  }

  usageOf(user: string): { bytes: number; pendingSlots: number } {
    const u = this.usage.get(user);
    return { bytes: u?.bytes ?? 0, pendingSlots: u?.pending ?? 0 };
  }

  private account(user: string, bytes: number, pending: number): void {
    const u = this.usage.get(user) ?? { bytes: 0, pending: 0 };
    u.bytes += bytes;
    u.pending += pending;
    if (u.bytes <= 0 && u.pending <= 0) this.usage.delete(user);
    else this.usage.set(user, u);
  }

  /** Rebuild the index from disk (at start). Unreadable entries and leftover partial uploads are removed. */
  async load(): Promise<number> {
    await mkdir(this.root, { recursive: true });
    let n = 0;
    for (const ud of await readdir(this.root)) {
      if (!/^([0-9a-f]{2})+$/.test(ud)) continue;
      const user = Buffer.from(ud, 'hex').toString('utf8');
      let ids: string[];
      try {
        ids = await readdir(path.join(this.root, ud));
      } catch {
        continue;
      }
      for (const id of ids) {
        const d = path.join(this.root, ud, id);
        try {
          const meta = JSON.parse(await readFile(path.join(d, 'meta.json'), 'utf8')) as StoredMeta;
          const st = await stat(path.join(d, 'data'));
          if (st.size !== meta.size) throw new Error('size mismatch');
          this.entries.set(id, { ...meta, id, user, state: 'stored', putToken: '', slotExpires: 0 });
          this.account(user, meta.size, 0);
          n++;
        } catch {
          await rm(d, { recursive: true, force: true });
        }
      }
    }
    return n;
  }

  addPending(e: Entry): void {
    this.entries.set(e.id, e);
    this.account(e.user, e.size, 1);
  }

  /** A pending slot lapsed or its upload failed for good: give back its reservation. */
  dropPending(e: Entry): void {
    if (this.entries.get(e.id) !== e || e.state === 'stored') return;
    this.entries.delete(e.id);
    this.account(e.user, -e.size, -1);
  }

  /** The bytes arrived in full in `<dir>/data.part`: make them the file. */
  async commit(e: Entry): Promise<void> {
    const d = this.dir(e);
    e.created = Date.now();
    const meta: StoredMeta = { name: e.name, size: e.size, type: e.type, created: e.created };
    await writeFile(path.join(d, 'meta.json'), JSON.stringify(meta));
    await rename(path.join(d, 'data.part'), path.join(d, 'data'));
    e.state = 'stored';
    e.putToken = '';
    this.account(e.user, 0, -1);
  }

  async remove(e: Entry): Promise<void> {
    if (this.entries.get(e.id) !== e) return;
    this.entries.delete(e.id);
    this.account(e.user, -e.size, e.state === 'stored' ? 0 : -1);
    await rm(this.dir(e), { recursive: true, force: true });
  }

  /** Everything of one account (account deletion). */
  async removeUser(user: string): Promise<number> {
    let n = 0;
    for (const e of [...this.entries.values()]) {
      if (e.user !== user) continue;
      this.entries.delete(e.id);
      n++;
    }
    this.usage.delete(user);
    await rm(path.join(this.root, userDir(user)), { recursive: true, force: true });
    return n;
  }

  users(): string[] {
    const s = new Set<string>();
    for (const e of this.entries.values()) s.add(e.user);
    return [...s];
  }
}
