/* Off-CPU test workload: two threads loop the same number of times, one
 * sleeping 60 ms per loop in sleep_long, the other 20 ms in sleep_short,
 * so their blocked time is 3:1 by function (long sleeps, so that the
 * wait for a CPU after each wakeup, counted too, barely moves the split).
 * argv[2], if given, is a pause in ms before the threads start, for a
 * profiler given the pid to attach first. argv[1] is the loop count.
 * Built by the tests without frame pointers. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static long loops = 50;

static void nap(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* The asm barriers keep each function a frame of its own (no tail call
 * into nanosleep, no inlining into the worker). */
__attribute__((noinline)) void sleep_long(void)
{
	nap(60);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void sleep_short(void)
{
	nap(20);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void *worker_long(void *arg)
{
	for (long i = 0; i < loops; i++)
		sleep_long();
	return arg;
}

__attribute__((noinline)) void *worker_short(void *arg)
{
	for (long i = 0; i < loops; i++)
		sleep_short();
	return arg;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		loops = atol(argv[1]);
	if (argc > 2)
		nap(atol(argv[2]));
	pthread_t a, b;
	pthread_create(&a, NULL, worker_long, NULL);
	pthread_create(&b, NULL, worker_short, NULL);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	return 0;
}
