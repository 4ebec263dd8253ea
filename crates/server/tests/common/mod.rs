//! A perfpilot server in the test process, on a free port, with an HTTP
//! client that hands back every status (errors included) to assert on.

// Each test crate uses a different part of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use perfpilot_server::ServerConfig;
use perfpilot_store::embedded::{EmbeddedStore, Options};
use perfpilot_store::Store;

/// A server on 127.0.0.1 (port chosen by the kernel) over a store in a
/// temporary directory; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start(token: Option<&str>) -> TestServer {
        TestServer::start_with(ServerConfig {
            token: token.map(str::to_string),
            ..Default::default()
        })
    }

    /// With `config` (its `listen` is replaced by the free port).
    pub fn start_with(config: ServerConfig) -> TestServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = EmbeddedStore::open(
            dir.path(),
            Options {
                background: false,
                ..Default::default()
            },
        )
        .expect("opening the store");
        TestServer::start_on(config, Arc::new(store), dir)
    }

    /// With `config` over `store` (the test keeps a handle to it).
    pub fn start_with_store(config: ServerConfig, store: Arc<dyn Store>) -> TestServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        TestServer::start_on(config, store, dir)
    }

    fn start_on(config: ServerConfig, store: Arc<dyn Store>, dir: tempfile::TempDir) -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding port 0");
        let addr = listener.local_addr().expect("the bound address");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let config = ServerConfig {
            listen: addr,
            ..config
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    let shutdown = async move {
                        while !stop.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    };
                    perfpilot_server::serve_on(listener, config, store, shutdown)
                        .await
                        .expect("serving");
                });
            })
        };
        // The listener is bound already: connections queue until served.
        TestServer {
            addr,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An HTTP client that returns non-2xx answers instead of errors.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// (status, headers, body as text).
pub type Answer = (u16, ureq::http::HeaderMap, String);

pub fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut r = r.expect("an HTTP answer");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.body_mut().read_to_string().expect("a text body");
    (status, headers, body)
}

pub fn get(url: &str) -> Answer {
    answer(client().get(url).call())
}

pub fn header<'a>(headers: &'a ureq::http::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}
