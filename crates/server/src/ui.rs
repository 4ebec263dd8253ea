//! The web UI: the files of `ui/dist`, embedded at build time by build.rs,
//! served as the router's fallback (behind the same token as the API).
//!
//! The UI is a single-page app: paths that look like its routes
//! (`/explore`, `/compare/...`: no dot in the last segment) get
//! `index.html` and the app reads the path itself. Paths under the API
//! prefixes never do, so a mistyped endpoint is a JSON 404 rather than a
//! page of HTML.

use axum::body::Body;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, VARY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// One embedded file.
#[derive(Debug, PartialEq)]
pub(crate) struct Asset {
    /// URL path, e.g. `/index.html`, `/assets/index-3f2a9c.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
    /// `bytes` gzipped, when that is smaller.
    pub gzip: Option<&'static [u8]>,
}

mod embedded {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

/// Whether this binary was built with the web UI (`ui/dist` existed).
pub fn embedded() -> bool {
    embedded::ASSETS.iter().any(|a| a.path == "/index.html")
}

/// Path prefixes that belong to the API and the ingest protocols.
const API_PREFIXES: &[&str] = &["/api/", "/pyroscope/", "/querier.", "/push."];

const NOT_BUILT_PAGE: &str = "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
<title>perfpilot</title></head>\n<body>\n<p>perfpilot's web UI was not built into this binary: \
run <code>scripts/build-ui.sh</code>, then <code>cargo build</code>.</p>\n<p>The HTTP API \
works without it: see docs/API.md.</p>\n</body>\n</html>\n";

/// What a request path resolves to.
#[derive(Debug, PartialEq)]
enum Target<'a> {
    /// An embedded file: the one named, or `index.html` for an app route.
    File(&'a Asset),
    /// An app route, but no UI was embedded.
    NotBuilt,
    /// An API path (or a method other than GET/HEAD) with no route.
    NoEndpoint,
    /// A file name that is not embedded.
    NotFound,
}

fn index(assets: &[Asset]) -> Option<&Asset> {
    assets.iter().find(|a| a.path == "/index.html")
}

fn resolve<'a>(assets: &'a [Asset], method: &Method, path: &str) -> Target<'a> {
    let is_api = path == "/api" || API_PREFIXES.iter().any(|p| path.starts_with(p));
    if is_api || (method != Method::GET && method != Method::HEAD) {
        return Target::NoEndpoint;
    }
    if let Some(asset) = assets.iter().find(|a| a.path == path) {
        return Target::File(asset);
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        return Target::NotFound;
    }
    match index(assets) {
        Some(asset) => Target::File(asset),
        None => Target::NotBuilt,
    }
}

/// Whether an `Accept-Encoding` value allows gzip (`gzip` or `*`, with a
/// non-zero q-value).
fn accepts_gzip(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        if !coding.eq_ignore_ascii_case("gzip") && coding != "*" {
            return false;
        }
        // q=0 means "not acceptable".
        !parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        })
    })
}

/// The answer for `path`, from `assets` (the embedded table in the server,
/// a small one in tests).
fn respond(assets: &[Asset], method: &Method, path: &str, accept: Option<&str>) -> Response {
    let mut response = match resolve(assets, method, path) {
        Target::File(asset) => file(asset, accept_gzip_for(asset, accept)),
        Target::NotBuilt => (
            [
                (CONTENT_TYPE, "text/html; charset=utf-8"),
                (CACHE_CONTROL, "no-cache"),
            ],
            NOT_BUILT_PAGE,
        )
            .into_response(),
        Target::NoEndpoint => {
            ApiError::not_found(format!("no such endpoint: {method} {path}")).into_response()
        }
        Target::NotFound => ApiError::not_found(format!("no such file: {path}")).into_response(),
    };
    response
        .headers_mut()
        .insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn accept_gzip_for(asset: &Asset, accept: Option<&str>) -> bool {
    asset.gzip.is_some() && accepts_gzip(accept)
}

fn file(asset: &Asset, gzip: bool) -> Response {
    // Files under /assets/ have content hashes in their names: a new build
    // has new names, so they never need revalidating. index.html names the
    // current ones, so it must be revalidated every time.
    let cache = if asset.path.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let body = match (gzip, asset.gzip) {
        (true, Some(gz)) => gz,
        _ => asset.bytes,
    };
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    if asset.gzip.is_some() {
        headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// The router's fallback: every request no route matched.
pub(crate) async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let accept = headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok());
    respond(embedded::ASSETS, &method, uri.path(), accept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    const ASSETS: &[Asset] = &[
        Asset {
            path: "/assets/index-abc123.js",
            content_type: "text/javascript; charset=utf-8",
            bytes: b"console.log(1)",
            gzip: Some(b"GZ-JS"),
        },
        Asset {
            path: "/assets/logo-def.png",
            content_type: "image/png",
            bytes: b"PNG",
            gzip: None,
        },
        Asset {
            path: "/favicon.svg",
            content_type: "image/svg+xml",
            bytes: b"<svg/>",
            gzip: None,
        },
        Asset {
            path: "/index.html",
            content_type: "text/html; charset=utf-8",
            bytes: b"<html>app</html>",
            gzip: Some(b"GZ-HTML"),
        },
    ];

    async fn get(assets: &[Asset], path: &str, accept: Option<&str>) -> (Response, Vec<u8>) {
        let response = respond(assets, &Method::GET, path, accept);
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        (Response::from_parts(parts, Body::empty()), bytes)
    }

    fn header<'a>(r: &'a Response, name: &str) -> &'a str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn paths_resolve_to_files_the_app_or_errors() {
        let get = |p: &str| resolve(ASSETS, &Method::GET, p);
        let index = &ASSETS[3];
        assert_eq!(get("/index.html"), Target::File(index));
        assert_eq!(get("/favicon.svg"), Target::File(&ASSETS[2]));
        assert_eq!(get("/assets/index-abc123.js"), Target::File(&ASSETS[0]));
        // App routes, however deep.
        for p in ["/", "/explore", "/compare", "/alerts/", "/explore/a/b"] {
            assert_eq!(get(p), Target::File(index), "{p}");
        }
        // A file name that is not there.
        for p in ["/assets/index-old.js", "/robots.txt", "/a/b.map"] {
            assert_eq!(get(p), Target::NotFound, "{p}");
        }
        // The API's namespace never gets the app.
        for p in [
            "/api",
            "/api/v1/nope",
            "/api/",
            "/pyroscope/nope",
            "/querier.v1.QuerierService/Nope",
        ] {
            assert_eq!(get(p), Target::NoEndpoint, "{p}");
        }
        assert_eq!(
            resolve(ASSETS, &Method::HEAD, "/explore"),
            Target::File(index)
        );
        assert_eq!(
            resolve(ASSETS, &Method::POST, "/explore"),
            Target::NoEndpoint
        );
    }

    #[test]
    fn without_a_build_app_routes_get_the_not_built_page() {
        assert_eq!(resolve(&[], &Method::GET, "/"), Target::NotBuilt);
        assert_eq!(resolve(&[], &Method::GET, "/explore"), Target::NotBuilt);
        assert_eq!(resolve(&[], &Method::GET, "/x.js"), Target::NotFound);
        assert_eq!(resolve(&[], &Method::GET, "/api/v1/x"), Target::NoEndpoint);
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("br, GZIP;q=0.5, deflate")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(None));
        assert!(!accepts_gzip(Some("")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(Some("br, gzip;q=0")));
        assert!(!accepts_gzip(Some("gzip; q=0.0")));
        assert!(!accepts_gzip(Some("x-gzip-like")));
    }

    #[tokio::test]
    async fn files_with_their_types_caching_and_encoding() {
        let (r, body) = get(ASSETS, "/assets/index-abc123.js", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body, b"console.log(1)", "plain without Accept-Encoding");
        assert_eq!(header(&r, "content-type"), "text/javascript; charset=utf-8");
        assert_eq!(
            header(&r, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header(&r, "content-encoding"), "");
        assert_eq!(header(&r, "vary"), "Accept-Encoding");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");

        let (r, body) = get(ASSETS, "/assets/index-abc123.js", Some("gzip, br")).await;
        assert_eq!(body, b"GZ-JS");
        assert_eq!(header(&r, "content-encoding"), "gzip");

        // Not compressed: plain even when gzip is accepted.
        let (r, body) = get(ASSETS, "/assets/logo-def.png", Some("gzip")).await;
        assert_eq!(body, b"PNG");
        assert_eq!(header(&r, "content-encoding"), "");
        assert_eq!(header(&r, "vary"), "");

        let (r, body) = get(ASSETS, "/favicon.svg", None).await;
        assert_eq!(
            (header(&r, "cache-control"), &body[..]),
            ("no-cache", &b"<svg/>"[..])
        );

        for path in ["/", "/index.html", "/explore"] {
            let (r, body) = get(ASSETS, path, None).await;
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(body, b"<html>app</html>", "{path}");
            assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
            assert_eq!(header(&r, "cache-control"), "no-cache");
        }
    }

    #[tokio::test]
    async fn errors_and_the_not_built_page() {
        let (r, body) = get(ASSETS, "/api/v1/nope", Some("gzip")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(header(&r, "content-type"), "application/json");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(json["error"], "no such endpoint: GET /api/v1/nope");

        let (r, body) = get(ASSETS, "/missing.js", None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        assert!(String::from_utf8_lossy(&body).contains("no such file: /missing.js"));

        for path in ["/", "/explore"] {
            let (r, body) = get(&[], path, Some("gzip")).await;
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
            assert_eq!(header(&r, "content-encoding"), "");
            assert!(String::from_utf8_lossy(&body).contains("web UI was not built"));
        }
    }
}
