/** The errno name of a netlink error (EEXIST, ENODEV, ...), if it has one. */
export function errno(err: unknown): string | undefined {
  const e = err as { code?: unknown; errno?: unknown; message?: string };
  if (typeof e.code === 'string') return e.code;
  return /\b(E[A-Z]+)\b/.exec(e.message ?? '')?.[1];
}
