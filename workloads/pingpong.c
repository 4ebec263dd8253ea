/* Context-switch benchmark: two threads pass one byte back and forth
 * through two pipes, each blocking in read until the other writes. Warms
 * up for argv[2] seconds (default 2: time for a profiler to attach), then
 * counts round trips for argv[1] seconds (default 3) and prints
 * "ROUND_TRIPS_PER_SECOND". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int ping[2], pong[2];
static volatile int done;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *echo(void *arg)
{
	char c;
	while (read(ping[0], &c, 1) == 1 && c)
		if (write(pong[1], &c, 1) != 1)
			break;
	return arg;
}

/* One round trip: a byte out and back. */
static long trips(double seconds)
{
	char c = 1;
	long n = 0;
	double end = now() + seconds;
	while (now() < end) {
		for (int i = 0; i < 256; i++) {
			if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1)
				exit(1);
		}
		n += 256;
	}
	return n;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3;
	double warmup = argc > 2 ? atof(argv[2]) : 2;
	if (pipe(ping) || pipe(pong))
		return 1;
	pthread_t t;
	pthread_create(&t, NULL, echo, NULL);
	trips(warmup);
	long n = trips(seconds);
	char stop = 0;
	if (write(ping[1], &stop, 1) != 1)
		return 1;
	pthread_join(t, NULL);
	printf("%.0f\n", n / seconds);
	return 0;
}
