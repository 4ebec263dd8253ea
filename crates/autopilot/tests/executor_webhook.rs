//! Webhook and degrade operations against a local HTTP server.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use perfpilot_autopilot::ops::{Ops, Trigger};
use perfpilot_autopilot::{parse_policies, Operation};

/// Answers each request with the next status and sends its body back.
fn server(statuses: Vec<u16>) -> (String, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for status in statuses {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            tx.send((request_line, String::from_utf8(body).unwrap()))
                .unwrap();
            let mut stream = reader.into_inner();
            write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            )
            .unwrap();
        }
    });
    (url, rx)
}

fn operation(yaml: &str) -> Operation {
    let text = format!(
        "apiVersion: perfpilot.dev/v1alpha1\nkind: AutopilotPolicy\nmetadata: {{name: p}}\nspec:\n  targetRef: {{kind: Service, name: checkout}}\n  actions:\n    - {{name: a, condition: 'p99 > 1', operation: {yaml}}}\n"
    );
    let report = parse_policies(&text);
    assert!(!report.has_errors(), "{:?}", report.diagnostics);
    report.policies[0].actions[0].operation.clone()
}

fn trigger() -> Trigger {
    Trigger {
        alert: Some("HighLatency".into()),
        target: "checkout".into(),
        labels: BTreeMap::from([(
            "instance".to_string(),
            "web-1\", \"injected\": \"yes".to_string(),
        )]),
    }
}

#[test]
fn webhook_body_is_templated_and_retried() {
    let (url, rx) = server(vec![503, 200]);
    let op = operation(&format!(
        "{{type: webhook, url: '{url}', retries: 2, timeout: 5s, body: {{text: '{{{{alert}}}} on {{{{target}}}} at {{{{labels.instance}}}}', n: 1}}}}"
    ));
    let ops = Ops {
        http_backoff: Duration::from_millis(10),
        ..Ops::default()
    };
    let o = ops.run(&op, &trigger());
    assert!(o.ok, "{o:?}");
    assert_eq!(o.exit_status, Some(200));
    let (first_line, first) = rx.recv().unwrap();
    assert!(first_line.starts_with("POST /hook"), "{first_line}");
    let (_, second) = rx.recv().unwrap();
    assert_eq!(first, second);
    let body: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"text": "HighLatency on checkout at web-1\", \"injected\": \"yes", "n": 1})
    );
}

#[test]
fn webhook_gives_up_after_its_retries() {
    let (url, rx) = server(vec![500, 500]);
    let op = operation(&format!("{{type: webhook, url: '{url}', retries: 1}}"));
    let ops = Ops {
        http_backoff: Duration::from_millis(10),
        ..Ops::default()
    };
    let o = ops.run(&op, &trigger());
    assert!(!o.ok);
    assert_eq!(o.exit_status, Some(500));
    assert!(o.error.is_some());
    assert_eq!(rx.iter().count(), 2);
}

#[test]
fn degrade_posts_the_flag() {
    let (url, rx) = server(vec![200]);
    let op = operation(&format!(
        "{{type: degrade, url: '{url}', flag: recommendations, value: false}}"
    ));
    let o = Ops::default().run(&op, &trigger());
    assert!(o.ok, "{o:?}");
    let (_, body) = rx.recv().unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["flag"], "recommendations");
    assert_eq!(body["value"], false);
    assert_eq!(body["target"], "checkout");
}
