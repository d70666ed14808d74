// A hardware probe for the write workloads (G1, G2, G3, G5): what one new page of memory costs.
// A log appends into pages the kernel has to hand out fresh (page cache for a segment's new
// bytes); on a VM the first touch of a guest page can cost far more than writing a resident one.
// Maps MIB MiB of anonymous memory three times and reports, per round, the rate of the first
// pass over it (page faults, zeroing, any hypervisor work behind them) and of a second pass (the
// memory is resident by then).
//
//   gcc -O2 -o /tmp/first_touch benches/peers/first_touch.c
//   taskset -c 1 /tmp/first_touch 1024
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 2 || atol(argv[1]) <= 0) {
    fprintf(stderr, "usage: %s MIB (the size to map, e.g. 1024)\n", argv[0]);
    return 2;
  }
  size_t bytes = (size_t)atol(argv[1]) << 20;
  for (int round = 0; round < 3; round++) {
    char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      perror("mmap");
      return 1;
    }
    double t = now_s();
    memset(p, 1, bytes);
    double first = now_s() - t;
    t = now_s();
    memset(p, 2, bytes);
    double second = now_s() - t;
    printf("round %d: first touch %.2f GB/s (%.2f us per 4 KiB page), second pass %.2f GB/s\n",
           round, bytes / first / 1e9, first / (bytes / 4096) * 1e6, bytes / second / 1e9);
    munmap(p, bytes);
  }
  return 0;
}
