// What an install changed, so a failure part-way can put the host back as it was: every path
// noted before it is written (its old content, link or absence), every folder it had to create.
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { describeError } from "../lib/errors.ts";

type Undo = { what: string; run: () => void | Promise<void> };

export class InstallJournal {
  private readonly undo: Undo[] = [];

  /** Creates `dir` (and its parents); the ones it created go again on rollback. */
  dir(dir: string, mode = 0o755): void {
    const first = mkdirSync(dir, { recursive: true, mode });
    if (first) this.undo.push({ what: `remove ${first}`, run: () => rmSync(first, { recursive: true, force: true }) });
  }

  /** Remembers `path` as it is now (a file, a symlink, or nothing), to restore it on rollback. */
  keep(path: string): void {
    let st: ReturnType<typeof lstatSync> | null = null;
    try {
      st = lstatSync(path);
    } catch {
      st = null;
    }
    if (!st) {
      this.undo.push({ what: `remove ${path}`, run: () => rmSync(path, { force: true }) });
    } else if (st.isSymbolicLink()) {
      const target = readlinkSync(path);
      this.undo.push({
        what: `restore ${path}`,
        run: () => {
          rmSync(path, { force: true });
          symlinkSync(target, path);
        },
      });
    } else if (st.isFile()) {
      const text = readFileSync(path);
      const mode = st.mode & 0o7777;
      this.undo.push({
        what: `restore ${path}`,
        run: () => {
          writeFileSync(path, text);
          chmodSync(path, mode);
        },
      });
    }
  }

  /** Any other step to take back (a service enabled, say). */
  step(what: string, run: () => void | Promise<void>): void {
    this.undo.push({ what, run });
  }

  /** Undoes everything, newest first; returns what could not be undone. */
  async rollback(): Promise<string[]> {
    const failed: string[] = [];
    for (const u of this.undo.splice(0).reverse()) {
      try {
        await u.run();
      } catch (err) {
        failed.push(`could not ${u.what}: ${describeError(err)}`);
      }
    }
    return failed;
  }
}
