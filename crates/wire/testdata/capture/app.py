# Tiny program profiled by the pyroscope-io SDK, pointed at the local listener.
import sys, time, hashlib
import pyroscope
port = sys.argv[1]
mem = len(sys.argv) > 2 and sys.argv[2] == "mem"
pyroscope.configure(
    application_name="perfpilot.capture",
    server_address=f"http://127.0.0.1:{port}",
    upload_interval=2,
    tags={"env": "test", "region": "local"},
    report_pid=True,
    mem_enabled=mem,
)
def burn_cpu(deadline):
    v = b"x"
    while time.time() < deadline:
        v = hashlib.sha256(v).digest()
def allocate(deadline):
    keep = []
    while time.time() < deadline:
        keep.append(bytearray(64 * 1024))
        if len(keep) > 200:
            del keep[:100]
def main():
    end = time.time() + 5
    with pyroscope.tag_wrapper({"handler": "burn"}):
        burn_cpu(end)
    if mem:
        allocate(time.time() + 3)
main()
pyroscope.shutdown()
time.sleep(1)
