# Test workload: main -> driver -> mid -> {leaf_heavy, leaf_light}, where
# leaf_heavy does three times the work of leaf_light. Runs until it has
# used sys.argv[1] seconds of CPU.
import sys
import time


def leaf_heavy(n):
    x = 1
    for _ in range(3 * n):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return x


def leaf_light(n):
    x = 1
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return x


def mid(n):
    a = leaf_heavy(n)
    b = leaf_light(n)
    return a ^ b


def driver(seconds):
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x ^= mid(2000)
    return x


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    driver(seconds)


if __name__ == "__main__":
    main()
