// Test workload: main -> driver -> mid -> {leaf_heavy, leaf_light} as
// members of a class template in a namespace, so names must be demangled.
// Runs until it has used argv[1] seconds of CPU.
#include <cstdlib>
#include <ctime>

namespace perfpilot_test {

volatile unsigned long sink;

template <typename T> struct Worker {
    __attribute__((noinline)) static T leaf_heavy(long n, T x)
    {
        for (long i = 0; i < 3 * n; i++)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
        return x;
    }
    __attribute__((noinline)) static T leaf_light(long n, T x)
    {
        for (long i = 0; i < n; i++)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
        return x;
    }
    __attribute__((noinline)) static T mid(long n, T x)
    {
        T a = leaf_heavy(n, x);
        T b = leaf_light(n, a);
        sink = b;
        return b ^ 1;
    }
};

__attribute__((noinline)) void driver(double seconds)
{
    std::clock_t end = std::clock() + static_cast<std::clock_t>(seconds * CLOCKS_PER_SEC);
    unsigned long x = 1;
    while (std::clock() < end)
        x = Worker<unsigned long>::mid(100000, x);
    sink = x;
}

} // namespace perfpilot_test

int main(int argc, char **argv)
{
    perfpilot_test::driver(argc > 1 ? std::atof(argv[1]) : 3.0);
    perfpilot_test::sink = perfpilot_test::sink + 1;
    return 0;
}
