# Tiny program profiled by the pyroscope-io 0.8 SDK, pointed at the local listener.
import sys, time, hashlib, threading
import pyroscope
port = sys.argv[1]
pyroscope.configure(
    application_name="perfpilot.capture",
    server_address=f"http://127.0.0.1:{port}",
    tags={"env": "test", "region": "local"},
    report_pid=True,
)
def burn_cpu(deadline):
    v = b"x"
    while time.time() < deadline:
        v = hashlib.sha256(v).digest()
with pyroscope.tag_wrapper({"handler": "burn"}):
    burn_cpu(time.time() + 12)
pyroscope.shutdown()
time.sleep(2)
