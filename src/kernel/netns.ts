/** Network namespaces as paths a file descriptor or a tool in another namespace can open. */

/** The namespace of a process. */
export function processNetns(pid: number): string {
  return `/proc/${pid}/ns/net`;
}

/** This process's own namespace (the host's, for pipewright). */
export function ownNetns(): string {
  return processNetns(process.pid);
}
