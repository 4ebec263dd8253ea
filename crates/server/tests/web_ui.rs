//! The web UI's routes over HTTP. Which UI build (if any) was embedded is
//! not known here, so these check what holds either way: app routes get
//! an HTML page (the app or the "not built" page), the API keeps its JSON
//! errors, and the token guards the UI as it guards the API.

mod common;
use common::*;

use std::io::{Read, Write};

use base64::Engine;

/// The raw answer to a GET sent without `Accept-Encoding` (the HTTP client
/// used elsewhere always offers gzip).
fn raw_get(server: &TestServer, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(server.addr).expect("connecting");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("sending");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("reading");
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn app_routes_get_the_page_and_the_api_keeps_json_errors() {
    let server = TestServer::start(None);
    let (status, headers, root) = get(&server.url("/"));
    assert_eq!(status, 200, "{root}");
    assert!(
        header(&headers, "content-type").starts_with("text/html"),
        "{headers:?}"
    );
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert!(
        root.contains("<html") || root.contains("<!doctype html"),
        "{root}"
    );

    // Client-side routes are the same page, so a reload or a shared link
    // works.
    for path in ["/explore", "/compare", "/alerts", "/explore/deeper"] {
        let (status, headers, body) = get(&server.url(path));
        assert_eq!(status, 200, "{path}");
        assert!(header(&headers, "content-type").starts_with("text/html"));
        assert_eq!(body, root, "{path}");
    }

    let (status, headers, body) = get(&server.url("/api/v1/nope"));
    assert_eq!(status, 404, "{body}");
    assert_eq!(header(&headers, "content-type"), "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(json["error"], "no such endpoint: GET /api/v1/nope");

    // A file name that was not built is not the app either.
    let (status, _, _) = get(&server.url("/assets/no-such-file-0000.js"));
    assert_eq!(status, 404);

    // HEAD answers like GET. (Its body is not read: the client would try
    // to inflate the empty body of a gzip answer.)
    let head = client()
        .head(server.url("/explore"))
        .call()
        .expect("an answer to HEAD");
    assert_eq!(head.status().as_u16(), 200);
    assert!(header(head.headers(), "content-type").starts_with("text/html"));

    // A client that does not offer gzip gets the page as is.
    let raw = raw_get(&server, "/explore");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        !raw.to_ascii_lowercase().contains("content-encoding"),
        "{raw}"
    );
    assert!(raw.ends_with(&root), "{raw}");

    // The API itself is unchanged.
    let (status, _, body) = get(&server.url("/api/v1/profile_types"));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_token_guards_the_ui_and_asks_the_browser_for_it() {
    let server = TestServer::start(Some("s3cret"));
    for path in ["/", "/explore", "/api/v1/profile_types", "/api/v1/nope"] {
        let (status, headers, body) = get(&server.url(path));
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(
            header(&headers, "www-authenticate"),
            "Basic realm=\"perfpilot\"",
            "{path}"
        );
    }
    // What a browser sends after its prompt: any user, the token as the
    // password.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("me:s3cret")
    );
    let (status, headers, _) = answer(
        client()
            .get(server.url("/explore"))
            .header("Authorization", &basic)
            .call(),
    );
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").starts_with("text/html"));
    let (status, _, _) = answer(
        client()
            .get(server.url("/api/v1/profile_types"))
            .header("Authorization", &basic)
            .call(),
    );
    assert_eq!(status, 200);
    assert_eq!(get(&server.url("/healthz")).0, 200, "health needs no token");
}
