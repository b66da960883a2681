/**
 * The embedded store: one SQLite file (WAL) in the state directory, root-only, schema-versioned
 * through PRAGMA user_version. Each later feature (pools, volumes, lifecycle) adds a migration.
 * A store that cannot be read is an error that says so; it is never silently reset.
 */
import Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadAddon } from '../util/addon.js';
import { PipewrightError } from '../util/errors.js';
import { shipped } from '../util/paths.js';
import { MIGRATIONS, REPAIRS } from './migrations.js';

const ADDON = join('build', 'Release', 'better_sqlite3.node');
let addon: object | undefined;

/**
 * The SQLite addon by its path: better-sqlite3 would otherwise search for it through the
 * `bindings` package (a stack trace and a dozen stat calls on every start). It is looked for in
 * pipewright's own node_modules first, then wherever Node resolves the package.
 */
export function sqliteAddon(): object {
  if (addon) return addon;
  const inPackage = shipped(join('node_modules', 'better-sqlite3', ADDON));
  const path = existsSync(inPackage)
    ? inPackage
    : join(dirname(createRequire(import.meta.url).resolve('better-sqlite3/package.json')), ADDON);
  addon = loadAddon<object>(path);
  return addon;
}

export type Db = Database.Database;

/** A store opened before its command came (a warm worker's, src/cli/warm-worker.ts), and its file. */
let openedAhead: { store: Store; dev: number; ino: number } | undefined;

export class Store {
  // Made once: building a transaction function or preparing a statement costs more than running it.
  private readonly transaction: Database.Transaction<(fn: () => unknown) => unknown>;
  private readonly statements = new Map<string, Database.Statement>();

  private constructor(
    readonly db: Db,
    readonly stateDir: string,
  ) {
    this.transaction = db.transaction((fn: () => unknown) => fn());
  }

  /**
   * Opens the store of `stateDir` now, for the next Store.open of that directory in this process:
   * a warm worker's command then finds its connection made. Taken only while the directory still
   * holds the same file (a store removed and made again meanwhile is opened afresh).
   */
  static openAhead(stateDir: string): void {
    const store = Store.open(stateDir);
    const { dev, ino } = statSync(join(stateDir, 'pipewright.db'));
    openedAhead = { store, dev, ino };
  }

  static open(stateDir: string): Store {
    const ahead = openedAhead;
    openedAhead = undefined;
    if (ahead && ahead.store.stateDir === stateDir && sameInode(join(stateDir, 'pipewright.db'), ahead)) {
      checkPrivate(stateDir);
      return ahead.store;
    }
    // Another store's connection made ahead is left as it is: closing would checkpoint its log
    // (fsyncs) on this command's time, and the worker's process ends with the command.
    if (!existsSync(stateDir)) mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    checkPrivate(stateDir);
    const file = join(stateDir, 'pipewright.db');
    let db: Db | undefined;
    try {
      // better-sqlite3 takes the loaded addon too (its types know only a path); `timeout` is SQLite's busy timeout.
      db = new Database(file, { nativeBinding: sqliteAddon() as unknown as string, timeout: BUSY_TIMEOUT_MS });
      chmodSync(file, 0o600);
      useWal(db);
      // WAL + NORMAL: a commit cannot corrupt the store; only the last ones may be lost on power loss.
      // One exec: each statement prepared costs a command's start ~0.1 ms.
      db.exec('PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON');
      migrate(db);
    } catch (err) {
      db?.close();
      if (err instanceof PipewrightError) throw err;
      // Only a damaged file calls for a backup; anything else (permissions, a full disk) is fixed in place.
      const damaged = ['SQLITE_CORRUPT', 'SQLITE_NOTADB'].includes((err as { code?: string }).code ?? '');
      throw new PipewrightError(
        `cannot open the store ${file}: ${(err as Error).message}${damaged ? '; the file is damaged: restore it from a backup' : ''}`,
        {
          cause: err,
        },
      );
    }
    return new Store(db, stateDir);
  }

  /** Runs fn in one IMMEDIATE transaction: concurrent pipewright processes serialize here. */
  tx<T>(fn: () => T): T {
    try {
      return this.transaction.immediate(fn) as T;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
      const file = join(this.stateDir, 'pipewright.db');
      throw new PipewrightError(
        `the store ${file} stayed locked by other writers for ${BUSY_TIMEOUT_MS / 1000} s; retry`,
        { cause: err },
      );
    }
  }

  /** A prepared statement, prepared on first use and kept. */
  stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) this.statements.set(sql, (s = this.db.prepare(sql)));
    return s;
  }

  close(): void {
    this.db.close();
  }
}

/**
 * How long a write waits for another's transaction. SQLite's busy handler is not fair: a waiter
 * polls, and newer waiters poll sooner, so one can wait out many others' transactions. Twenty
 * attaches at once in an emulated VM (each transaction tens of ms there) queued past 10 s.
 */
const BUSY_TIMEOUT_MS = 60_000;

/**
 * The switch to WAL takes the file for itself for a moment: a process opening a fresh store at the
 * same instant as another gets SQLITE_BUSY at once (SQLite calls no busy handler there), so it
 * tries again, within the busy timeout.
 */
function useWal(db: Db): void {
  const until = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > until) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

const schemaVersion = (db: Db) => db.pragma('user_version', { simple: true }) as number;

function checkNotNewer(version: number): void {
  if (version > MIGRATIONS.length) {
    throw new PipewrightError(
      `the store has schema version ${version}, newer than this pipewright knows (${MIGRATIONS.length}); upgrade pipewright`,
    );
  }
}

/** Whether `file` is still the file (device, inode) it was. */
function sameInode(file: string, was: { dev: number; ino: number }): boolean {
  const now = statSync(file, { throwIfNoEntry: false });
  return now?.dev === was.dev && now.ino === was.ino;
}

/**
 * The state dir holds the leases, the lock files and the volumes. One others may write to (say
 * /tmp) would let them plant or swap any of it: refused, not chmod-ed (it may be shared on
 * purpose, and taking others' write bits away would break them). One others may only enter or
 * read (0755: an admin's umask) would let them read every volume, and run a set-uid file a
 * container planted in one: made 0700 if it is ours, as Docker keeps /var/lib/docker.
 */
function checkPrivate(stateDir: string): void {
  const { mode, uid } = statSync(stateDir);
  const shown = (mode & 0o7777).toString(8);
  if (mode & 0o022) {
    throw new PipewrightError(
      `state dir ${stateDir} is writable by others (mode ${shown}); use a directory only root can write (chmod 700)`,
    );
  }
  if (!(mode & 0o055)) return;
  if (uid !== process.geteuid?.())
    throw new PipewrightError(
      `state dir ${stateDir} is open to other users (mode ${shown}) and not ours; chmod 700 ${stateDir}`,
    );
  chmodSync(stateDir, mode & 0o7700);
}

/** The repairable columns this store lacks (see REPAIRS); each table's columns read once. */
function missingColumns(db: Db): typeof REPAIRS {
  const tables = new Map<string, string[]>();
  const columnsOf = (table: string) => {
    let columns = tables.get(table);
    if (!columns)
      tables.set(table, (columns = (db.pragma(`table_info(${table})`) as { name: string }[]).map((c) => c.name)));
    return columns;
  };
  return REPAIRS.filter((r) => !columnsOf(r.table).includes(r.column));
}

/**
 * The version is read again inside the IMMEDIATE transaction that migrates: two processes opening
 * a fresh store at once serialize there, and the second finds the schema the first made.
 * Foreign keys are off while the steps run (a step that rebuilds a table must not cascade its
 * drop) and checked before the commit, as SQLite's table rebuild procedure has it.
 */
function migrate(db: Db): void {
  const version = schemaVersion(db);
  checkNotNewer(version);
  if (version === MIGRATIONS.length && missingColumns(db).length === 0) return;
  db.pragma('foreign_keys = OFF');
  try {
    db.transaction(() => {
      const version = schemaVersion(db);
      checkNotNewer(version);
      for (let v = version; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]);
      for (const r of missingColumns(db)) db.exec(`ALTER TABLE ${r.table} ADD COLUMN ${r.column} ${r.type}`);
      const broken = db.pragma('foreign_key_check') as unknown[];
      if (broken.length)
        throw new PipewrightError(
          `the store's schema upgrade found ${broken.length} rows pointing nowhere; nothing was changed`,
        );
      db.pragma(`user_version = ${MIGRATIONS.length}`);
    }).immediate();
  } finally {
    db.pragma('foreign_keys = ON');
  }
}
