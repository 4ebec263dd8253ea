/* Allocation benchmark for scripts/alloc-bench.py. argv: mode (tight or
 * service), seconds, a pause in ms before starting (for a profiler given
 * the pid to attach first), and for service the work per request in
 * loop iterations. Prints allocations per second over the run.
 *   tight:   malloc(64) + free in a loop: the allocator's fast path, so
 *            the cost of anything hooked on it shows in full.
 *   service: requests of some computing and 4 allocations of 64 B to
 *            4 KiB (three freed at the end of the request, one a request
 *            later), about 100k allocations/s alone on one core. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile uint64_t sink;

__attribute__((noinline)) static uint64_t work(long n, uint64_t x)
{
	for (long i = 0; i < n; i++)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	return x;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "tight";
	double secs = argc > 2 ? atof(argv[2]) : 3;
	if (argc > 3)
		usleep(atoi(argv[3]) * 1000);
	long per_request = argc > 4 ? atol(argv[4]) : 2000;
	double start = now(), end = start + secs;
	uint64_t allocs = 0, x = 1;
	void *held = NULL;
	if (strcmp(mode, "tight") == 0) {
		while (now() < end) {
			for (int i = 0; i < 4096; i++) {
				char *p = malloc(64);
				p[0] = (char)i;
				__asm__ volatile("" : : "r"(p) : "memory");
				free(p);
			}
			allocs += 4096;
		}
	} else {
		while (now() < end) {
			for (int r = 0; r < 64; r++) {
				char *a = malloc(64), *b = malloc(256), *c = malloc(1024);
				char *d = malloc(4096);
				a[0] = b[0] = c[0] = d[0] = (char)r;
				x = work(per_request, x ^ (uintptr_t)a);
				free(a);
				free(b);
				free(c);
				free(held);
				held = d;
				allocs += 4;
			}
		}
	}
	sink = x;
	free(held);
	printf("%.0f\n", allocs / (now() - start));
	return 0;
}
