//! The browser app's files: `web/dist` (built by `web/build.mjs` and
//! committed) embedded in the binary, so one binary is the whole deployable;
//! with `--web-dir` the same files are read from disk instead (development).
//!
//! Paths of the app (`/`, `/login`, `/meetings/...`, `/invite/...`) answer
//! with its `index.html`; hashed assets under `/assets/` are cached for a
//! year, HTML is revalidated every time (ETag/304). Precompressed `.br` and
//! `.gz` copies are served to browsers that accept them. Every response of
//! the server carries the security headers set by [`security_headers`]: a
//! Content-Security-Policy without inline script (the exports' own,
//! stricter one is kept), no sniffing, no referrer, no framing, and
//! `Cross-Origin-Opener-Policy: same-origin`.
//!
//! This module must never serve anything outside the app's folder.

use std::{
    borrow::Cow,
    path::{Component, Path, PathBuf},
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use super::{AppState, error::ApiError};

#[derive(rust_embed::Embed)]
#[folder = "../web/dist"]
struct Dist;

/// What the app may load: its own scripts and styles only (no inline
/// script; style attributes are set through the CSSOM, which CSP allows),
/// the WebSocket on the same origin, and nobody may frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
    manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Hashed file names change with their content: cache them for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else (index.html above all) is revalidated on every use.
const REVALIDATE: &str = "no-cache";

/// Adds the security headers to every response. A response that brings
/// its own Content-Security-Policy (the exports: no script at all) keeps
/// it. Every page is its own browsing context group
/// (`Cross-Origin-Opener-Policy: same-origin`): a page another site opened
/// cannot reach into this one, nor a site opened from here (a link in a
/// protocol) reach back through `window.opener`.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Invitation links carry their secret in the path: never leak it.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// A file of the app, from the binary or from disk.
struct Asset {
    bytes: Cow<'static, [u8]>,
    etag: String,
}

async fn load(dir: Option<&Path>, rel: &str) -> Option<Asset> {
    match dir {
        None => Dist::get(rel).map(|f| Asset {
            etag: hex(&f.metadata.sha256_hash()),
            bytes: f.data,
        }),
        Some(dir) => {
            let path = safe_join(dir, rel)?;
            let bytes = tokio::fs::read(&path).await.ok()?;
            Some(Asset {
                etag: hex(&Sha256::digest(&bytes)),
                bytes: Cow::Owned(bytes),
            })
        }
    }
}

/// `dir/rel`, or `None` if `rel` tries to leave `dir`.
fn safe_join(dir: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(dir.join(rel))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Paths the app routes itself; they all answer with index.html.
fn is_app_route(path: &str) -> bool {
    path == "/"
        || path == "/login"
        || path == "/meetings"
        || path.starts_with("/meetings/")
        || path.starts_with("/invite/")
}

/// Whether the client accepts `coding` (a q of 0 refuses it).
fn accepts(headers: &HeaderMap, coding: &str) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            name.eq_ignore_ascii_case(coding) && !refused
        })
}

/// The fallback of the router: the app's files and routes.
pub async fn serve(State(app): State<AppState>, method: Method, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/api/") || path.starts_with("/sync/") {
        return ApiError::NotFound("no such endpoint").into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let dir = app.config.web_dir.as_deref();
    let headers = request.headers();
    let (rel, status) = if is_app_route(&path) {
        ("index.html".to_owned(), StatusCode::OK)
    } else {
        let rel = path.trim_start_matches('/').to_owned();
        if load(dir, &rel).await.is_some() {
            (rel, StatusCode::OK)
        } else if Path::new(&rel).extension().is_none() {
            // An unknown page: the app says so, in the person's language.
            ("index.html".to_owned(), StatusCode::NOT_FOUND)
        } else {
            return (StatusCode::NOT_FOUND, "not found").into_response();
        }
    };
    let Some(asset) = load(dir, &rel).await else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mime = mime_guess::from_path(&rel).first_or_octet_stream();
    let content_type = if mime.type_() == mime_guess::mime::TEXT
        || mime.subtype() == mime_guess::mime::JAVASCRIPT
    {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    let cache = if rel.starts_with("assets/") {
        IMMUTABLE
    } else {
        REVALIDATE
    };

    let mut body = asset.bytes;
    let mut etag = asset.etag;
    let mut encoding = None;
    for (coding, suffix) in [("br", "br"), ("gzip", "gz")] {
        if !accepts(headers, coding) {
            continue;
        }
        if let Some(compressed) = load(dir, &format!("{rel}.{suffix}")).await {
            body = compressed.bytes;
            etag = format!("{etag}-{suffix}");
            encoding = Some(coding);
            break;
        }
    }
    let etag = format!("\"{etag}\"");

    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, cache)
        .header(header::ETAG, &etag)
        .header(header::VARY, "Accept-Encoding");
    if let Some(coding) = encoding {
        response = response.header(header::CONTENT_ENCODING, coding);
    }
    let not_modified = status == StatusCode::OK
        && headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let (status, body) = if not_modified {
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else if method == Method::HEAD {
        (status, Body::empty())
    } else {
        (status, Body::from(body))
    };
    response
        .status(status)
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_folder() {
        let root = Path::new("/srv/web");
        assert_eq!(
            safe_join(root, "assets/main.js"),
            Some(PathBuf::from("/srv/web/assets/main.js"))
        );
        assert_eq!(safe_join(root, "../secret"), None);
        assert_eq!(safe_join(root, "assets/../../secret"), None);
        assert_eq!(safe_join(root, "/etc/passwd"), None);
    }

    #[test]
    fn accept_encoding_honours_q_zero() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate, br;q=0"),
        );
        assert!(accepts(&h, "gzip"));
        assert!(!accepts(&h, "br"));
        assert!(!accepts(&HeaderMap::new(), "gzip"));
    }

    #[test]
    fn the_built_app_is_embedded() {
        let index = Dist::get("index.html").expect("web/dist/index.html is embedded");
        let html = std::str::from_utf8(&index.data).unwrap();
        assert!(html.contains(r#"<script type="module" src="/assets/main-"#));
        assert!(!html.contains("<script>"), "no inline script");
    }
}
