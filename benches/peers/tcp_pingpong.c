// A hardware-and-kernel probe for the latency workloads (G4, S4): the cost of one request and
// reply over loopback TCP with no broker in between. The client sends 1 KiB and spins on
// recv(MSG_DONTWAIT) for a 16-byte reply, like `loadgen --busy-poll`; the server answers each
// 1 KiB it reads, blocking in read() or, with SPIN=1 in its environment, spinning too.
//
//   gcc -O2 -o /tmp/tcp_pingpong benches/peers/tcp_pingpong.c
//   taskset -c 1 /tmp/tcp_pingpong server 29999 &
//   taskset -c 0 /tmp/tcp_pingpong client 29999 3      # seconds; prints p50/p90/p99/p99.9 in us
//
// When the client disconnects, the server prints its own CPU time (getrusage: user + system) per
// request it answered.
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { REQUEST = 1024, REPLY = 16, SAMPLES_MAX = 20000000 };

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static int serve(int port) {
  int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = loopback(port);
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1)) {
    perror("bind/listen");
    return 1;
  }
  int c = accept(l, NULL, NULL);
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int spin = getenv("SPIN") != NULL;
  char buf[REQUEST];
  size_t got = 0;
  long answered = 0;
  for (;;) {
    ssize_t n = spin ? recv(c, buf + got, REQUEST - got, MSG_DONTWAIT)
                     : read(c, buf + got, REQUEST - got);
    if (n == 0) break;
    if (n < 0) continue;  // EAGAIN while spinning
    got += (size_t)n;
    if (got == REQUEST) {
      got = 0;
      answered++;
      if (write(c, buf, REPLY) != REPLY) return 1;
    }
  }
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  double us = (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
  printf("server (%s): %ld requests, %.1f us of CPU per request (%.0f%% of it system time)\n",
         spin ? "spinning" : "blocking", answered, answered ? us / answered : 0.0,
         us > 0 ? 100.0 * (u.ru_stime.tv_sec * 1e6 + u.ru_stime.tv_usec) / us : 0.0);
  return 0;
}

static int ping(int port, int seconds) {
  int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = loopback(port);
  if (connect(s, (struct sockaddr *)&a, sizeof a)) {
    perror("connect");
    return 1;
  }
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char buf[REQUEST];
  memset(buf, 7, sizeof buf);
  long long *lat = malloc(sizeof(long long) * SAMPLES_MAX);
  long n = 0;
  long long end = now_ns() + seconds * 1000000000LL;
  while (now_ns() < end && n < SAMPLES_MAX) {
    long long t0 = now_ns();
    if (write(s, buf, REQUEST) != REQUEST) return 1;
    size_t got = 0;
    while (got < REPLY) {
      ssize_t r = recv(s, buf, REPLY - got, MSG_DONTWAIT);
      if (r > 0) got += (size_t)r;
    }
    lat[n++] = now_ns() - t0;
  }
  qsort(lat, n, sizeof *lat, by_value);
  printf("round trips %ld: p50 %lld p90 %lld p99 %lld p99.9 %lld us\n", n, lat[n / 2] / 1000,
         lat[n * 90 / 100] / 1000, lat[n * 99 / 100] / 1000, lat[n * 999 / 1000] / 1000);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "server")) return serve(atoi(argv[2]));
  if (argc >= 4 && !strcmp(argv[1], "client")) return ping(atoi(argv[2]), atoi(argv[3]));
  fprintf(stderr, "usage: %s server PORT | client PORT SECONDS\n", argv[0]);
  return 2;
}
