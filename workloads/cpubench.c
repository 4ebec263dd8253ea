/* CPU-bound benchmark for overhead measurements: one thread per CPU, each
 * hashing a private buffer through a few levels of calls, for argv[1]
 * seconds. Prints the total number of blocks hashed per second. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double seconds;
static volatile int stop;

__attribute__((noinline)) static uint64_t mix(const uint8_t *p, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

__attribute__((noinline)) static uint64_t block(uint8_t *buf, size_t n, uint64_t h)
{
	h = mix(buf, n / 2, h);
	buf[h % n] ^= (uint8_t)h;
	return mix(buf + n / 2, n / 2, h);
}

static void *worker(void *arg)
{
	uint64_t *count = arg;
	uint8_t buf[16384];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 31);
	uint64_t h = 1469598103934665603ULL;
	while (!stop) {
		h = block(buf, sizeof(buf), h);
		(*count)++;
	}
	return (void *)(uintptr_t)h;
}

int main(int argc, char **argv)
{
	seconds = argc > 1 ? atof(argv[1]) : 10;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_t t[256];
	uint64_t counts[256] = {0};
	if (n > 256)
		n = 256;
	for (long i = 0; i < n; i++)
		pthread_create(&t[i], NULL, worker, &counts[i]);
	struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
	nanosleep(&ts, NULL);
	stop = 1;
	uint64_t total = 0;
	for (long i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		total += counts[i];
	}
	printf("%.1f\n", total / seconds);
	return 0;
}
