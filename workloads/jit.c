/* Test workload for JIT symbolization: copies a small spin loop into
 * anonymous executable memory, names it "jit_spin" in /tmp/perf-PID.map as
 * JITs do, and runs it from driver(). The generated
 * code keeps a frame pointer, as JIT code usually does. It runs until it
 * has used argv[1] seconds of CPU, so a loaded machine changes how long it
 * takes (and how long its map is there to read), not how many samples it
 * gets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* push %rbp; mov %rsp,%rbp; 1: dec %rdi; jnz 1b; pop %rbp; ret */
static const unsigned char code[] = {0x55, 0x48, 0x89, 0xe5, 0x48, 0xff, 0xcf,
				     0x75, 0xfb, 0x5d, 0xc3};

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((noinline)) void driver(void (*spin)(long), double seconds)
{
	double end = now() + seconds;
	while (now() < end)
		spin(1000000);
	__asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3.0;
	unsigned char *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 1;
	memcpy(mem, code, sizeof(code));
	char path[64];
	snprintf(path, sizeof(path), "/tmp/perf-%d.map", getpid());
	FILE *f = fopen(path, "w");
	if (!f)
		return 1;
	fprintf(f, "%lx %zx jit_spin\n", (unsigned long)mem, sizeof(code));
	fclose(f);
	driver((void (*)(long))mem, seconds);
	unlink(path);
	return 0;
}
