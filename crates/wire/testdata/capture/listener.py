# Throwaway HTTP listener: dumps each request's method, path, headers and raw body.
import http.server, json, os, sys, threading
OUT = sys.argv[1]
PORT = int(sys.argv[2])
os.makedirs(OUT, exist_ok=True)
n = [0]
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with lock:
            n[0] += 1
            i = n[0]
        with open(os.path.join(OUT, f"req{i}.body"), "wb") as f:
            f.write(body)
        with open(os.path.join(OUT, f"req{i}.json"), "w") as f:
            json.dump({"method": "POST", "path": self.path, "headers": dict(self.headers.items())}, f, indent=1)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
