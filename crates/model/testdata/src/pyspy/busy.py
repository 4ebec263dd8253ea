"""Burns CPU in named functions on two threads for about two seconds, for
py-spy to record testdata/py-spy.speedscope.json (see ../../README.md)."""
import threading
import time


def add_numbers(seconds):
    end = time.monotonic() + seconds
    total = 0
    while time.monotonic() < end:
        for i in range(1000):
            total += i
    return total


def join_strings(seconds):
    end = time.monotonic() + seconds
    parts = []
    while time.monotonic() < end:
        parts = [str(i) for i in range(1000)]
    return "".join(parts)


def main():
    worker = threading.Thread(target=join_strings, args=(1.0,), name="joiner")
    worker.start()
    add_numbers(1.5)
    worker.join()


if __name__ == "__main__":
    main()
