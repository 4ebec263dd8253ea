/* Lock contention test workload: a holder thread takes mutex 0 and holds
 * it 60 ms while a waiter blocks on it in wait_long, then takes mutex 1
 * and holds it 20 ms while another waiter blocks on it in wait_short, for
 * argv[1] loops. So the time waited in pthread_mutex_lock is 3:1 by those
 * functions, about loops x 60 ms in wait_long. Each waiter says it is
 * about to lock (a semaphore) before it does, and the holder starts its
 * hold only then, so no wait is cut short by a waiter that came late.
 * argv[2], if given, is a pause in ms before the threads start (for a
 * profiler given the pid). Built by the tests without frame pointers. */
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <time.h>

static long loops = 30;
static pthread_mutex_t locks[2] = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER};
static sem_t go[2], ready[2], done[2];
static const long hold_ms[2] = {60, 20};

static void nap(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* The asm barriers keep each function a frame of its own. */
__attribute__((noinline)) void wait_long(void)
{
	pthread_mutex_lock(&locks[0]);
	__asm__ volatile("" ::: "memory");
	pthread_mutex_unlock(&locks[0]);
}

__attribute__((noinline)) void wait_short(void)
{
	pthread_mutex_lock(&locks[1]);
	__asm__ volatile("" ::: "memory");
	pthread_mutex_unlock(&locks[1]);
}

__attribute__((noinline)) void *waiter(void *arg)
{
	long i = (long)arg;
	for (long n = 0; n < loops; n++) {
		sem_wait(&go[i]);
		sem_post(&ready[i]);
		if (i == 0)
			wait_long();
		else
			wait_short();
		sem_post(&done[i]);
	}
	return arg;
}

__attribute__((noinline)) void *holder(void *arg)
{
	for (long n = 0; n < loops; n++) {
		for (int i = 0; i < 2; i++) {
			pthread_mutex_lock(&locks[i]);
			sem_post(&go[i]);
			sem_wait(&ready[i]);
			nap(hold_ms[i]);
			pthread_mutex_unlock(&locks[i]);
			sem_wait(&done[i]);
		}
	}
	return arg;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		loops = atol(argv[1]);
	if (argc > 2)
		nap(atol(argv[2]));
	pthread_t t[3];
	for (int i = 0; i < 2; i++) {
		sem_init(&go[i], 0, 0);
		sem_init(&ready[i], 0, 0);
		sem_init(&done[i], 0, 0);
	}
	pthread_create(&t[0], NULL, waiter, (void *)0L);
	pthread_create(&t[1], NULL, waiter, (void *)1L);
	pthread_create(&t[2], NULL, holder, NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	return 0;
}
