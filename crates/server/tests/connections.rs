//! Connections that hold the server without using it (issue 10, finding
//! 5): silent and slow clients are cut off after their timeouts, stalled
//! uploads get 408 and let go, and at the connection cap idle
//! connections make room while busy ones make newcomers wait.
//!
//! Timeouts here are a second; each check waits up to 30 s for what must
//! happen, so a loaded machine only makes them slower.

mod common;
use common::*;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use perfpilot_server::{ConnLimits, ServerConfig};

/// Far longer than any timeout configured here.
const PATIENCE: Duration = Duration::from_secs(30);

fn server(conn: ConnLimits) -> TestServer {
    TestServer::start_with(ServerConfig {
        conn,
        ..Default::default()
    })
}

fn short() -> ConnLimits {
    ConnLimits {
        max_connections: 64,
        header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        body_min_rate: 1000,
    }
}

fn connect(s: &TestServer) -> TcpStream {
    let c = TcpStream::connect(s.addr).expect("connecting");
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    c
}

/// Reads until the server closes the connection; everything it sent.
/// Fails when it is still open after `PATIENCE`.
fn until_closed(c: &mut TcpStream) -> String {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "the connection is still open after {:?}; it sent {:?}",
                    start.elapsed(),
                    String::from_utf8_lossy(&got)
                )
            }
            Err(e) => panic!("reading: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether the server closed `c` within `wait` (without sending anything).
fn closed_within(c: &mut TcpStream, wait: Duration) -> bool {
    c.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Err(_) => false,
    }
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";

#[test]
fn a_silent_connection_is_closed_after_the_header_timeout() {
    let s = server(short());
    let mut c = connect(&s);
    assert_eq!(until_closed(&mut c), "");
}

#[test]
fn a_header_that_stops_halfway_is_cut_off() {
    let s = server(ConnLimits {
        idle_timeout: Duration::from_secs(3600),
        ..short()
    });
    let mut c = connect(&s);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: te").unwrap();
    assert_eq!(until_closed(&mut c), "");
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let s = server(ConnLimits {
        header_timeout: Duration::from_secs(3600),
        ..short()
    });
    let mut c = connect(&s);
    c.write_all(HEALTH).unwrap();
    let answer = until_closed(&mut c);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");
}

/// Sends the head of a 1 MB upload and `first` bytes of its body.
fn start_upload(s: &TestServer, first: usize) -> TcpStream {
    let mut c = connect(s);
    let head = "POST /ingest?name=slow&format=folded HTTP/1.1\r\nHost: test\r\n\
                Content-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n";
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&b"main;work 1\n".repeat(first / 12 + 1)[..first])
        .unwrap();
    c
}

#[test]
fn a_stalled_upload_gets_408_and_is_dropped() {
    let s = server(short());
    let mut c = start_upload(&s, 1000);
    let answer = until_closed(&mut c);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("--body-timeout"), "{answer}");
}

#[test]
fn an_upload_below_the_minimum_rate_is_cut_off() {
    // Never pausing a whole second, but at 600 bytes/s, under 1000.
    let s = server(ConnLimits {
        body_timeout: Duration::from_secs(1),
        ..short()
    });
    let mut c = start_upload(&s, 0);
    let start = Instant::now();
    c.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let mut buf = [0u8; 4096];
    let mut answer = Vec::new();
    while start.elapsed() < PATIENCE {
        if c.write_all(&b"main;work 1\n".repeat(10)).is_err() {
            break;
        }
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = c.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("--body-min-rate"), "{answer}");
}

#[test]
fn at_the_cap_idle_connections_make_room() {
    let s = server(ConnLimits {
        max_connections: 8,
        header_timeout: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(3600),
        ..short()
    });
    let mut silent: Vec<TcpStream> = (0..8).map(|_| connect(&s)).collect();
    // Served although eight silent connections hold every slot.
    let (status, _, body) = get(&s.url("/healthz"));
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let closed = silent
        .iter_mut()
        .map(|c| closed_within(c, Duration::from_millis(500)))
        .filter(|&closed| closed)
        .count();
    assert!(
        closed >= 1,
        "no silent connection was closed for the new one"
    );
}

#[test]
fn at_the_cap_a_newcomer_waits_for_a_busy_connection() {
    let s = server(ConnLimits {
        max_connections: 2,
        body_timeout: Duration::from_secs(3600),
        body_min_rate: 0,
        ..short()
    });
    let mut busy: Vec<TcpStream> = (0..2).map(|_| start_upload(&s, 100)).collect();
    // Both uploads are in flight once the server is reading their bodies;
    // a request on a third connection is not answered meanwhile.
    std::thread::sleep(Duration::from_millis(300));
    let mut third = connect(&s);
    third.write_all(HEALTH).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 256];
    match third.read(&mut buf) {
        Ok(n) if n > 0 => panic!(
            "answered past the cap while both connections were busy: {}",
            String::from_utf8_lossy(&buf[..n])
        ),
        _ => {}
    }
    // One upload ends (its client goes away): the newcomer is served.
    drop(busy.pop());
    third.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = Vec::new();
    let start = Instant::now();
    while !answer.ends_with(b"ok\n") && start.elapsed() < PATIENCE {
        match third.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
