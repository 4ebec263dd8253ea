/* Wall-view test workload: a thread named "walker" alternates 20 ms on CPU
 * (spinning) and 20 ms asleep, argv[1] times, and prints how long it ran
 * (ns, from its first to its last instruction), so its on- plus off-CPU
 * time can be checked against that. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long loops = 50;
static long elapsed_ns;
volatile unsigned long sink;

static long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

__attribute__((noinline)) void spin(long ns)
{
	long end = now_ns() + ns;
	while (now_ns() < end)
		sink++;
}

__attribute__((noinline)) void rest(long ns)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = ns};
	while (nanosleep(&ts, &ts) != 0)
		;
	__asm__ volatile("" ::: "memory");
}

static void *walker(void *arg)
{
	long start = now_ns();
	for (long i = 0; i < loops; i++) {
		spin(20000000L);
		rest(20000000L);
	}
	elapsed_ns = now_ns() - start;
	return arg;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		loops = atol(argv[1]);
	pthread_t t;
	pthread_create(&t, NULL, walker, NULL);
	pthread_setname_np(t, "walker");
	pthread_join(t, NULL);
	printf("%ld\n", elapsed_ns);
	return 0;
}
