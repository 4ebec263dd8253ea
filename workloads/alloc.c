/* Allocation test workload, built by the tests without frame pointers.
 * For argv[1] seconds (default 5), in paced rounds: alloc_three
 * allocates and frees 3 times the bytes alloc_one does (3:1 by bytes,
 * the same number of calls); leak_some allocates blocks it never frees,
 * churn_some the same blocks, freed at once, so only the first grows
 * what is in use. argv[2], if given, is a pause in ms before starting,
 * for a profiler given the pid to attach first. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Kept reachable, so the leak is a leak by stack, not freed memory. */
void *volatile leaked_last;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The asm barriers keep each function a frame of its own. */
__attribute__((noinline)) void alloc_three(void)
{
	char *p = malloc(3072);
	memset(p, 1, 64);
	__asm__ volatile("" : : "r"(p) : "memory");
	free(p);
}

__attribute__((noinline)) void alloc_one(void)
{
	char *p = malloc(1024);
	memset(p, 1, 64);
	__asm__ volatile("" : : "r"(p) : "memory");
	free(p);
}

__attribute__((noinline)) void leak_some(void)
{
	char *p = malloc(16384);
	memset(p, 1, 64);
	leaked_last = p;
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void churn_some(void)
{
	char *p = malloc(16384);
	memset(p, 1, 64);
	__asm__ volatile("" : : "r"(p) : "memory");
	free(p);
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 5;
	if (argc > 2)
		usleep(atoi(argv[2]) * 1000);
	double start = now();
	/* Rounds of 1 ms: 200 of each small allocation, 4 leaked and 4
	 * churned blocks (64 KiB/ms leaked, 64 MiB/s). */
	while (now() - start < secs) {
		double round = now();
		for (int i = 0; i < 200; i++) {
			alloc_three();
			alloc_one();
		}
		for (int i = 0; i < 4; i++) {
			leak_some();
			churn_some();
		}
		double left = 0.001 - (now() - round);
		if (left > 0)
			usleep((useconds_t)(left * 1e6));
	}
	return 0;
}
