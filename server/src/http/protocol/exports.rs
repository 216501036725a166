//! The locked protocol's downloads (HTML, Markdown, PDF, JSON) for the
//! meeting's participants, with the headers that keep an export from
//! running as a page of this origin.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

use super::{actor, lifecycle};
use crate::{
    finalise::{Export, Format},
    http::{call::Call, error::ApiError},
};

/// The exports' own Content-Security-Policy: nothing loaded, no script,
/// their inline style only, never framed.
pub const EXPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn download(export: Export) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, export.format.content_type())],
        export.bytes,
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", export.filename)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&export.protocol_hash) {
        headers.insert("x-protokoll-hash", v);
    }
    if let Ok(v) = HeaderValue::from_str(&export.sha256) {
        headers.insert("x-protokoll-file-sha256", v);
    }
    // An export must never run as a page of this origin: its own policy
    // (no script, nothing loaded, its inline style only; a sandbox, so not
    // even this origin's cookies), which `security_headers` leaves alone.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(EXPORT_CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn export(call: Call, format: Format) -> Result<Response, ApiError> {
    let (app, meeting, _) = actor(call).await?;
    Ok(download(lifecycle(&app).export(meeting, format).await?))
}

/// The locked protocol as a self-contained HTML page.
#[utoipa::path(get, path = "/api/meetings/{id}/protocol.html", tag = "protocol",
    responses((status = 200, content_type = "text/html"), (status = 404), (status = 409)))]
pub async fn export_html(call: Call) -> Result<Response, ApiError> {
    export(call, Format::Html).await
}

/// The locked protocol as Markdown.
#[utoipa::path(get, path = "/api/meetings/{id}/protocol.md", tag = "protocol",
    responses((status = 200, content_type = "text/markdown"), (status = 404), (status = 409)))]
pub async fn export_markdown(call: Call) -> Result<Response, ApiError> {
    export(call, Format::Markdown).await
}

/// The locked protocol as PDF/A-2b.
#[utoipa::path(get, path = "/api/meetings/{id}/protocol.pdf", tag = "protocol",
    responses((status = 200, content_type = "application/pdf"), (status = 404), (status = 409),
        (status = 422, description = "`not_archivable`: a protocol locked before the bounds \
            of what can be typeset existed, beyond them"),
        (status = 503, description = "`busy`: every rendering slot was taken for 30 s")))]
pub async fn export_pdf(call: Call) -> Result<Response, ApiError> {
    export(call, Format::Pdf).await
}

/// The canonical JSON of the locked protocol: its SHA-256 is the
/// protocol's hash.
#[utoipa::path(get, path = "/api/meetings/{id}/protocol.json", tag = "protocol",
    responses((status = 200, content_type = "application/json"), (status = 404), (status = 409)))]
pub async fn export_json(call: Call) -> Result<Response, ApiError> {
    export(call, Format::Json).await
}
