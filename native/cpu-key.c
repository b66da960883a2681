// Prints this machine's CPU key (cpu-key.h): the build writes it beside the snapshot it made.
#include <inttypes.h>
#include <stdio.h>
#include "cpu-key.h"

int main(void) {
  printf("%016" PRIx64 "\n", cpu_key());
  return 0;
}
