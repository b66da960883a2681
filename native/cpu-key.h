// Which CPU features this machine has, as one number. A V8 startup snapshot only loads on a CPU
// with the features of the one that built it (V8 folds them into the snapshot's check; Node then
// exits with "Failed to load the startup snapshot"), so the executable compares this number with
// the one the build wrote beside the snapshot, and runs the bundle instead when they differ: a
// checkout copied to another machine, or shared with a VM whose CPU model differs.
#ifndef PIPEWRIGHT_CPU_KEY_H
#define PIPEWRIGHT_CPU_KEY_H
#include <cpuid.h>
#include <stdint.h>

static uint64_t cpu_key(void) {
  // Feature words only: leaf 1 ECX/EDX (not EBX: it holds the APIC id of the core we run on),
  // leaf 7 EBX/ECX/EDX, extended leaf 0x80000001 ECX/EDX. FNV-1a over them.
  unsigned int a, b, c, d, words[7] = {0};
  if (__get_cpuid(1, &a, &b, &c, &d)) words[0] = c, words[1] = d;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) words[2] = b, words[3] = c, words[4] = d;
  if (__get_cpuid(0x80000001, &a, &b, &c, &d)) words[5] = c, words[6] = d;
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned i = 0; i < 7; i++) h = (h ^ words[i]) * 0x100000001b3ULL;
  return h;
}
#endif
