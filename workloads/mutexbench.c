/* Lock contention benchmark. "mutex" (the default): four threads take
 * one pthread mutex in a loop, with a little work inside and outside it,
 * so that many lock calls find it held and wait in futex (tens of
 * thousands of waits a second); how much work gets done depends on how
 * the waits interleave, so a profiler that slows waits can change it
 * either way. "handoff": two threads hand a turn back and forth through
 * two semaphores, every handoff a futex wait and wake, so the rate falls
 * with whatever each wait costs. Warms up for argv[2] seconds (default 2:
 * time for a profiler to attach), then counts critical sections (or
 * handoffs) for argv[1] seconds (default 3) and prints "PER_SECOND".
 * argv[3] is the mode; argv[4] and argv[5], if given, the busy-loop
 * iterations in and out of the mutex's critical section. */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static sem_t turn[2];

/* Waits for its turn, passes it on. */
static void *handoff(void *arg)
{
	long id = (long)arg;
	unsigned long n = 0;
	while (phase < 2) {
		sem_wait(&turn[id]);
		sem_post(&turn[id ^ 1]);
		if (phase == 1)
			n++;
	}
	counted[id] = n;
	return arg;
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
	int handoffs = argc > 3 && strcmp(argv[3], "handoff") == 0;
	if (argc > 5) {
		inside = atoi(argv[4]);
		outside = atoi(argv[5]);
	}
	int threads = handoffs ? 2 : THREADS;
	pthread_t t[THREADS];
	sem_init(&turn[0], 0, 1);
	sem_init(&turn[1], 0, 0);
	for (long i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, handoffs ? handoff : worker, (void *)i);
	nap(warmup);
	phase = 1;
	double start = now();
	nap(seconds);
	phase = 2;
	double elapsed = now() - start;
	/* A handoff thread may wait for a turn that never comes. */
	sem_post(&turn[0]);
	sem_post(&turn[1]);
	unsigned long total = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		total += counted[i];
	}
	printf("%.0f\n", total / elapsed);
	return 0;
}
