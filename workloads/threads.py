# Test workload: two threads busy at once for sys.argv[1] seconds. py_spin
# runs Python code (holding the GIL); hash_spin runs in C with the GIL
# released (hashing a large buffer), so its samples must carry its own
# Python frames, not those of the thread holding the GIL.
import hashlib
import sys
import threading
import time


def py_spin(end):
    x = 1
    while time.time() < end:
        for _ in range(1000):
            x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return x


def hash_spin(end):
    data = b"x" * (1 << 20)
    while time.time() < end:
        hashlib.sha256(data).digest()


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    end = time.time() + seconds
    t = threading.Thread(target=hash_spin, args=(end,))
    t.start()
    py_spin(end)
    t.join()


if __name__ == "__main__":
    main()
