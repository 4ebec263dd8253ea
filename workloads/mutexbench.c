/* Lock contention benchmark: four threads take one pthread mutex in a
 * loop, with a little work inside and outside it, so that many lock calls
 * find it held and wait in futex (tens of thousands of waits a second).
 * Warms up for argv[2] seconds (default 2: time for a profiler to attach),
 * then counts critical sections for argv[1] seconds (default 3) and
 * prints "SECTIONS_PER_SECOND". argv[3] and argv[4], if given, are the
 * busy-loop iterations in and out of the critical section. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define THREADS 4

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int phase; /* 0 warm-up, 1 counting, 2 done */
static unsigned long counted[THREADS];
static volatile unsigned long shared;
/* Busy loop iterations in and out of the critical section. */
static int inside = 2000, outside = 500;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void spin(int n)
{
	for (volatile int i = 0; i < n; i++)
		;
}

__attribute__((noinline)) void critical_section(void)
{
	pthread_mutex_lock(&lock);
	shared++;
	spin(inside);
	pthread_mutex_unlock(&lock);
}

static void *worker(void *arg)
{
	long id = (long)arg;
	unsigned long n = 0;
	while (phase < 2) {
		critical_section();
		spin(outside);
		if (phase == 1)
			n++;
	}
	counted[id] = n;
	return arg;
}

static void nap(double s)
{
	struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) != 0)
		;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3.0;
	double warmup = argc > 2 ? atof(argv[2]) : 2.0;
	if (argc > 4) {
		inside = atoi(argv[3]);
		outside = atoi(argv[4]);
	}
	pthread_t t[THREADS];
	for (long i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	nap(warmup);
	phase = 1;
	double start = now();
	nap(seconds);
	phase = 2;
	double elapsed = now() - start;
	unsigned long total = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		total += counted[i];
	}
	printf("%.0f\n", total / elapsed);
	return 0;
}
