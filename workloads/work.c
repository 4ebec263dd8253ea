/* Test workload: main -> driver -> mid -> {leaf_heavy, leaf_light}, where
 * leaf_heavy does three times the work of leaf_light. Runs until it has
 * used argv[1] seconds of CPU, so a loaded machine changes how long it
 * takes, not how many samples it gets. Built by the tests with and without
 * frame pointers. */
#include <stdlib.h>
#include <time.h>

volatile unsigned long sink;


/* Each leaf does its work inline so that it is the sampled frame. */
__attribute__((noinline)) void leaf_heavy(long n)
{
	unsigned long x = sink;
	for (long i = 0; i < 3 * n; i++)
		x = x * 6364136223846793005UL + 1442695040888963407UL;
	sink = x;
}

__attribute__((noinline)) void leaf_light(long n)
{
	unsigned long x = sink;
	for (long i = 0; i < n; i++)
		x = x * 6364136223846793005UL + 1442695040888963407UL;
	sink = x;
}

__attribute__((noinline)) void mid(long n)
{
	leaf_heavy(n);
	leaf_light(n);
	sink++; /* no tail call: mid stays on the stack */
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((noinline)) void driver(double seconds)
{
	double end = now() + seconds;
	while (now() < end)
		mid(100000);
	sink++;
}

int main(int argc, char **argv)
{
	driver(argc > 1 ? atof(argv[1]) : 3.0);
	sink++;
	return 0;
}
