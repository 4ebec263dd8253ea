/* Burns CPU in a few named functions for about two seconds, for
 * `perf record -g` to sample (see ../../README.md). Built with frame
 * pointers so perf's default unwinder sees every caller. */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) uint64_t mix(uint64_t x) {
    for (int i = 0; i < 1000; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return x;
}

__attribute__((noinline)) uint64_t spin(double seconds) {
    double end = now() + seconds;
    uint64_t x = 1;
    while (now() < end)
        x = mix(x);
    return x;
}

__attribute__((noinline)) uint64_t checksum(double seconds) {
    static unsigned char buf[1 << 16];
    double end = now() + seconds;
    uint64_t sum = 0;
    while (now() < end) {
        for (unsigned i = 0; i < sizeof buf; i++) {
            buf[i] = (unsigned char)(buf[i] * 31 + i);
            sum += buf[i];
        }
    }
    return sum;
}

int main(void) {
    uint64_t a = spin(1.2);
    uint64_t b = checksum(0.6);
    printf("%llu\n", (unsigned long long)(a ^ b));
    return 0;
}
