//! The server in process on a free port, and a minimal HTTP/1.1
//! keep-alive client: what the HTTP benchmarks time is the server, so the
//! client does no more than write a request and read one answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use perfpilot_server::ServerConfig;
use perfpilot_store::Store;

/// Which tokio runtime serves.
#[derive(Clone, Copy)]
pub enum Runtime {
    /// One thread; store calls on its blocking pool.
    CurrentThread,
    /// A worker per CPU, as `perfpilot serve` runs.
    MultiThread,
}

/// `perfpilot_server::serve_on` on a thread of its own, answering once
/// `start` returns; stopped and joined when dropped.
pub struct InProcess {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    pub fn start(config: ServerConfig, store: Arc<dyn Store>, runtime: Runtime) -> InProcess {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding port 0");
        let addr = listener.local_addr().expect("the bound address");
        listener.set_nonblocking(true).expect("non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let rt = match runtime {
                    Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
                    Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread(),
                }
                .enable_all()
                .build()
                .expect("a tokio runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    let shutdown = async move {
                        while !stop.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    perfpilot_server::serve_on(listener, config, store, shutdown)
                        .await
                        .expect("serving");
                });
            })
        };
        // Bound already, so connections queue; wait until one is served.
        for _ in 0..100 {
            if TcpStream::connect(addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        InProcess {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One HTTP/1.1 keep-alive connection, one request at a time.
pub struct KeepAlive {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl KeepAlive {
    pub fn connect(addr: SocketAddr) -> KeepAlive {
        let s = TcpStream::connect(addr).expect("connecting to the server");
        s.set_nodelay(true).expect("TCP_NODELAY");
        KeepAlive {
            reader: BufReader::new(s.try_clone().expect("cloning a socket")),
            writer: s,
        }
    }

    /// POSTs `body` to `path` with `headers` (`Name: value` lines, each
    /// ending in CRLF); panics unless the answer is 200, and returns its
    /// body.
    pub fn post(&mut self, path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer
            .write_all(head.as_bytes())
            .and_then(|_| self.writer.write_all(body))
            .expect("sending a request");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("reading a status");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("reading headers");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut answer = vec![0u8; len];
        self.reader.read_exact(&mut answer).expect("reading a body");
        if status != 200 {
            panic!(
                "the server answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        answer
    }
}
