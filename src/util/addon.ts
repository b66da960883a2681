/**
 * Loads a native addon by its path with process.dlopen: no module resolution, no require()
 * machinery (which a CLI started from the startup snapshot would otherwise set up for this alone).
 */
export function loadAddon<T>(path: string): T {
  const module = { exports: {} };
  process.dlopen(module, path);
  return module.exports as T;
}
