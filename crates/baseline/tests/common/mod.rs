// Each test crate (and the alert_latency bench) uses part of these.
#![allow(dead_code)]

/// A webhook receiver on a free port: each JSON body POSTed to it is sent
/// on the channel with the wall-clock moment (Unix ms) it was whole, before
/// the answer goes back, so a sender that returned has been counted.
pub fn webhook() -> (String, std::sync::mpsc::Receiver<(f64, serde_json::Value)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding port 0");
    let url = format!("http://{}/hook", listener.local_addr().expect("an address"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut len = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64() * 1e3)
                .unwrap_or(0.0);
            if let Ok(v) = serde_json::from_slice(&body) {
                let _ = tx.send((at, v));
            }
            let mut s = &stream;
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, rx)
}
