//! Finalising over HTTP: lock, reopen, sign off, reject, the audit log and
//! the exports (participants, by role), and verification and the public
//! signing key (anyone, no sign-in). Who may do what is decided in
//! `crate::finalise`; this module maps requests and answers.

use axum::{
    Json,
    extract::{FromRequest, Multipart, Path, Query, Request, State, rejection::JsonRejection},
    http::{HeaderValue, header},
    response::{Html, IntoResponse, Response},
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    AppState,
    auth::CurrentUser,
    client::ClientIp,
    error::{ApiError, json_rejection},
    uploads,
};
use crate::{
    finalise::{
        Actor, Export, FinaliseError, Format, Lifecycle, ProtocolView, VerifyReport, VerifyStatus,
        signing,
    },
    meeting::MeetingId,
    store::StoreError,
};

/// The exports' own Content-Security-Policy: nothing loaded, no script,
/// their inline style only, never framed.
pub const EXPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Largest file `POST /api/verify` and `/verify` accept.
pub const MAX_VERIFY_BYTES: usize = 32 * 1024 * 1024;

/// What a multipart form may add around the file (boundaries, headers, a
/// hash field).
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// Most a request to the verification routes may send: the file and its
/// form.
pub const MAX_VERIFY_REQUEST_BYTES: usize = MAX_VERIFY_BYTES + MULTIPART_OVERHEAD;

/// The `Retry-After` of a download that found every rendering slot taken.
const RENDER_RETRY_AFTER_SECS: u64 = 5;

impl From<FinaliseError> for ApiError {
    fn from(e: FinaliseError) -> Self {
        match e {
            FinaliseError::NotFound => ApiError::NotFound("no such meeting"),
            FinaliseError::Forbidden(m) => ApiError::Forbidden(m),
            FinaliseError::Conflict(m) => ApiError::Conflict(m),
            FinaliseError::Invalid(m) => ApiError::Invalid(m.into()),
            FinaliseError::Unavailable => ApiError::Unavailable,
            FinaliseError::Signing(m) => ApiError::Store(StoreError::Corrupt(m)),
            FinaliseError::Render(m) => ApiError::Store(StoreError::Corrupt(m)),
            FinaliseError::Unarchivable(problem) => ApiError::Unarchivable(problem),
            FinaliseError::Busy => ApiError::Busy(
                "the server is busy rendering protocols; try again in a moment",
                RENDER_RETRY_AFTER_SECS,
            ),
            FinaliseError::Store(e) => ApiError::Store(e),
        }
    }
}

fn lifecycle(app: &AppState) -> Lifecycle<'_> {
    Lifecycle {
        db: &app.db,
        signer: &app.signer,
        rooms: Some(&app.rooms),
    }
}

/// The meeting (404 unless the caller may read it) and the caller as an
/// actor in it.
async fn actor(app: &AppState, me: CurrentUser, id: &str) -> Result<(MeetingId, Actor), ApiError> {
    let (meeting, access) = app.meetings().open(&me.0.user, id).await?;
    Ok((
        meeting.id,
        Actor {
            signed_in_with: me.0.credential.sign_in(),
            user: me.0.user,
            role: access.role,
            via: "api",
        },
    ))
}

/// The protocol's state; once locked, its hash, required sign-offs,
/// signature and export links.
#[utoipa::path(get, path = "/api/meetings/{id}/protocol", tag = "protocol",
    responses((status = 200, body = ProtocolView), (status = 401), (status = 404)))]
pub async fn status(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<ProtocolView>, ApiError> {
    let (meeting, _) = actor(&app, me, &id).await?;
    Ok(Json(lifecycle(&app).view(meeting).await?))
}

/// Lock the protocol (the secretary, or an administrator). From now on no
/// edit is accepted; open connections are told through the document's
/// `protocol` map and refused with close code 4423 if they write.
#[utoipa::path(post, path = "/api/meetings/{id}/protocol/lock", tag = "protocol",
    responses((status = 200, body = ProtocolView), (status = 403), (status = 404),
        (status = 409, description = "not a draft, or nobody (chair, justerare) could verify it"),
        (status = 422, description = "`not_archivable`: the protocol cannot become its archival \
            PDF; `error.problem` names the section (`item`) and what is wrong (`kind`: \
            `link_too_long`, `text_too_large`, `too_many_nodes`, `nested_too_deep`, `typeset`)")))]
pub async fn lock(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<ProtocolView>, ApiError> {
    let (meeting, actor) = actor(&app, me, &id).await?;
    Ok(Json(lifecycle(&app).lock(meeting, &actor).await?))
}

/// Take a locked protocol back to draft before anyone signed it off (the
/// secretary, or an administrator).
#[utoipa::path(post, path = "/api/meetings/{id}/protocol/reopen", tag = "protocol",
    responses((status = 200, body = ProtocolView), (status = 403), (status = 404), (status = 409)))]
pub async fn reopen(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<ProtocolView>, ApiError> {
    let (meeting, actor) = actor(&app, me, &id).await?;
    Ok(Json(lifecycle(&app).reopen(meeting, &actor).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignoffInput {
    /// The hash of the protocol you were shown.
    hash: String,
}

/// Sign off the protocol (the chair and each justerare), against the hash
/// you were shown: another hash is refused with 409. The last required
/// sign-off verifies the protocol and the server signs it.
#[utoipa::path(post, path = "/api/meetings/{id}/signoffs", tag = "protocol", request_body = SignoffInput,
    responses((status = 200, body = ProtocolView), (status = 403), (status = 404),
        (status = 409, description = "not locked, already signed, or a stale hash")))]
pub async fn signoff(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<SignoffInput>, JsonRejection>,
) -> Result<Json<ProtocolView>, ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    let (meeting, actor) = actor(&app, me, &id).await?;
    Ok(Json(
        lifecycle(&app)
            .signoff(meeting, &actor, body.hash.trim())
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectInput {
    /// The hash of the protocol you were shown.
    hash: String,
    /// Why it is rejected (required, at most 2000 characters).
    reason: String,
}

/// Reject the protocol (the chair or a justerare), with a reason: it goes
/// back to draft, and the rejection is in the audit log.
#[utoipa::path(post, path = "/api/meetings/{id}/protocol/reject", tag = "protocol", request_body = RejectInput,
    responses((status = 200, body = ProtocolView), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn reject(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    body: Result<Json<RejectInput>, JsonRejection>,
) -> Result<Json<ProtocolView>, ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    let (meeting, actor) = actor(&app, me, &id).await?;
    Ok(Json(
        lifecycle(&app)
            .reject(meeting, &actor, body.hash.trim(), &body.reason)
            .await?,
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditView {
    id: i64,
    at: String,
    actor_id: Option<String>,
    actor_name: String,
    /// `lock`, `reopen`, `signoff`, `reject` or `verify`.
    action: String,
    reason: Option<String>,
    hash: Option<String>,
    /// `api` or `cli`.
    via: String,
}

/// The meeting's audit log: every lock, reopening, sign-off, rejection and
/// verification, oldest first. Never rewritten.
#[utoipa::path(get, path = "/api/meetings/{id}/audit", tag = "protocol",
    responses((status = 200, body = Vec<AuditView>), (status = 404)))]
pub async fn audit(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<AuditView>>, ApiError> {
    let (meeting, _) = actor(&app, me, &id).await?;
    let entries = app.db.protocols.audit(meeting).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| AuditView {
                id: e.id,
                at: crate::finalise::rfc3339(e.at),
                actor_id: e.actor_id.map(|u| u.to_string()),
                actor_name: e.actor_name,
                action: e.action,
                reason: e.reason,
                hash: e.hash,
                via: e.via,
            })
            .collect(),
    ))
}

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

async fn export(
    app: AppState,
    me: CurrentUser,
    id: String,
    format: Format,
) -> Result<Response, ApiError> {
    let (meeting, _) = actor(&app, me, &id).await?;
    Ok(download(lifecycle(&app).export(meeting, format).await?))
}

/// The locked protocol as a self-contained HTML page.
#[utoipa::path(get, path = "/api/meetings/{id}/protocol.html", tag = "protocol",
    responses((status = 200, content_type = "text/html"), (status = 404), (status = 409)))]
pub async fn export_html(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    export(app, me, id, Format::Html).await
}

/// The locked protocol as Markdown.
#[utoipa::path(get, path = "/api/meetings/{id}/protocol.md", tag = "protocol",
    responses((status = 200, content_type = "text/markdown"), (status = 404), (status = 409)))]
pub async fn export_markdown(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    export(app, me, id, Format::Markdown).await
}

/// The locked protocol as PDF/A-2b.
#[utoipa::path(get, path = "/api/meetings/{id}/protocol.pdf", tag = "protocol",
    responses((status = 200, content_type = "application/pdf"), (status = 404), (status = 409),
        (status = 422, description = "`not_archivable`: a protocol locked before the bounds \
            of what can be typeset existed, beyond them"),
        (status = 503, description = "`busy`: every rendering slot was taken for 30 s")))]
pub async fn export_pdf(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    export(app, me, id, Format::Pdf).await
}

/// The canonical JSON of the locked protocol: its SHA-256 is the
/// protocol's hash.
#[utoipa::path(get, path = "/api/meetings/{id}/protocol.json", tag = "protocol",
    responses((status = 200, content_type = "application/json"), (status = 404), (status = 409)))]
pub async fn export_json(
    State(app): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    export(app, me, id, Format::Json).await
}

/// What a verification request carried: a file (as its SHA-256, hashed
/// while it arrived) or a hash typed in.
enum Presented {
    File(String),
    Hash(String),
}

/// Longest `hash` form field read; a SHA-256 in hex is 64 characters.
const MAX_HASH_FIELD: usize = 1024;

/// The gate's refusal as an answer.
fn refused(refusal: uploads::Refusal) -> ApiError {
    match refusal {
        uploads::Refusal::Rate(secs) => ApiError::Throttled(
            "too many verifications from your address; try again later".into(),
            secs,
        ),
        uploads::Refusal::Uploading => ApiError::Throttled(
            format!(
                "your address is uploading {} files already; wait for them to finish",
                uploads::UPLOADS_PER_ADDRESS
            ),
            1,
        ),
        uploads::Refusal::Busy => ApiError::Busy(
            "too many files are being verified at once; try again in a moment",
            uploads::BUSY_RETRY_AFTER_SECS,
        ),
    }
}

fn too_large() -> ApiError {
    ApiError::TooLarge(format!(
        "a protocol file is at most {} MiB",
        MAX_VERIFY_BYTES / (1024 * 1024)
    ))
}

/// Hashes a file as its pieces arrive; never holds more than one piece.
struct FileHash {
    sha: Sha256,
    bytes: usize,
}

impl FileHash {
    fn new() -> Self {
        Self {
            sha: Sha256::new(),
            bytes: 0,
        }
    }

    fn add(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.bytes += chunk.len();
        if self.bytes > MAX_VERIFY_BYTES {
            return Err(too_large());
        }
        self.sha.update(chunk);
        Ok(())
    }

    fn finish(self) -> Option<String> {
        (self.bytes > 0).then(|| signing::hex(&self.sha.finalize()))
    }
}

/// Reads a file from a multipart form (field `file`, or a `hash` field) or
/// the raw request body, hashing it as it arrives, within the upload
/// limits of the client's address.
async fn presented(
    app: &AppState,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Result<Presented, ApiError> {
    let _upload = app
        .verify_gate
        .upload(ip, std::time::Instant::now())
        .map_err(refused)?;
    let headers = request.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_VERIFY_REQUEST_BYTES as u64) {
        return Err(too_large());
    }
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if is_multipart {
        let malformed = |e: axum::extract::multipart::MultipartError| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::Malformed(e.body_text())
            }
        };
        let mut form = Multipart::from_request(request, app)
            .await
            .map_err(|e| ApiError::Malformed(e.body_text()))?;
        let mut hash = None;
        while let Some(mut field) = form.next_field().await.map_err(malformed)? {
            match field.name() {
                Some("file") => {
                    let mut file = FileHash::new();
                    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                        file.add(&chunk)?;
                    }
                    if let Some(digest) = file.finish() {
                        return Ok(Presented::File(digest));
                    }
                }
                Some("hash") => {
                    let mut text = Vec::new();
                    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                        text.extend_from_slice(&chunk);
                        if text.len() > MAX_HASH_FIELD {
                            return Err(ApiError::Invalid(
                                "a hash is 64 hexadecimal digits (SHA-256)".into(),
                            ));
                        }
                    }
                    let text = String::from_utf8_lossy(&text).trim().to_owned();
                    if !text.is_empty() {
                        hash = Some(text);
                    }
                }
                _ => {}
            }
        }
        hash.map(Presented::Hash)
            .ok_or_else(|| ApiError::Invalid("send a file (field \"file\") or a hash".into()))
    } else {
        let mut chunks = request.into_body().into_data_stream();
        let mut file = FileHash::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| ApiError::Malformed(e.to_string()))?;
            file.add(&chunk)?;
        }
        file.finish()
            .map(Presented::File)
            .ok_or_else(|| ApiError::Invalid("send the protocol file as the body".into()))
    }
}

async fn check(app: &AppState, presented: Presented) -> Result<VerifyReport, ApiError> {
    let lifecycle = lifecycle(app);
    Ok(match presented {
        Presented::File(digest) => lifecycle.verify_digest(&digest).await?,
        Presented::Hash(hash) => lifecycle.verify_hash(&hash).await?,
    })
}

/// Verify a protocol file (no sign-in): the raw file as the body, or a
/// multipart form with a `file` (or `hash`) field. Answers whether it is a
/// locked protocol of this server, or an untouched export of one, with its
/// meeting, state, sign-offs and whether the server's signature holds.
/// `status` says it in one word: `genuine`, `withdrawn` (genuine, but that
/// version was sent back to draft) or `no_match`. One client address may
/// upload two files at once and ask 30 times a minute (bursts of 10).
#[utoipa::path(post, path = "/api/verify", tag = "verification",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = VerifyReport), (status = 400), (status = 408),
        (status = 413), (status = 422), (status = 429), (status = 503)))]
pub async fn verify_file(
    State(app): State<AppState>,
    ip: ClientIp,
    request: Request,
) -> Result<Json<VerifyReport>, ApiError> {
    let presented = presented(&app, ip, request).await?;
    Ok(Json(check(&app, presented).await?))
}

/// Verify a protocol's hash, or the SHA-256 of an export file (no
/// sign-in).
#[utoipa::path(get, path = "/api/verify/{hash}", tag = "verification",
    responses((status = 200, body = VerifyReport), (status = 422), (status = 429)))]
pub async fn verify_hash(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(hash): Path<String>,
) -> Result<Json<VerifyReport>, ApiError> {
    app.verify_gate
        .ask(ip, std::time::Instant::now())
        .map_err(refused)?;
    Ok(Json(lifecycle(&app).verify_hash(&hash).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PublishedKey {
    key_id: String,
    /// Base64 of the 32-byte Ed25519 public key.
    public_key: String,
    /// The same key as SubjectPublicKeyInfo PEM (`openssl pkeyutl -verify
    /// -pubin -inkey key.pem -rawin ...`).
    public_key_pem: Option<String>,
    created_at: String,
    /// Whether new signatures are made with it (the key the database
    /// records as in use).
    current: bool,
    /// When it was retired: it signs no more, and what it signed before
    /// stays valid.
    retired_at: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PublishedKeys {
    algorithm: &'static str,
    keys: Vec<PublishedKey>,
}

/// The server's public signing keys (no sign-in). A verified protocol's
/// signature names its key by `key_id`.
#[utoipa::path(get, path = "/.well-known/protokoll-signing-key", tag = "verification",
    responses((status = 200, body = PublishedKeys)))]
pub async fn signing_keys(State(app): State<AppState>) -> Result<Json<PublishedKeys>, ApiError> {
    let keys = app.db.protocols.signing_keys().await?;
    Ok(Json(PublishedKeys {
        algorithm: "Ed25519",
        keys: keys
            .into_iter()
            .map(|k| PublishedKey {
                current: k.in_use && k.retired_at.is_none(),
                retired_at: k.retired_at.map(crate::finalise::rfc3339),
                public_key_pem: signing::public_key_pem(&k.public_key),
                public_key: signing::base64(&k.public_key),
                created_at: crate::finalise::rfc3339(k.created_at),
                key_id: k.key_id,
            })
            .collect(),
    }))
}

// ---- the verification page (no JavaScript) ------------------------------------

use protokoll_render::{html::escape, model::display_time};

/// The verification page's stylesheet: the browser app's look (its colours,
/// type and top bar), served as a file because the Content-Security-Policy
/// allows no inline style.
pub const PAGE_STYLE: &str = ":root{--ink:#1b1f24;--muted:#4a5260;--line:#c9ced6;--accent:#1f4e8c;\
--danger:#a3262a;--ok:#1d6b35;--focus:#1a4fa0}*{box-sizing:border-box}\
body{margin:0;background:#eceef2;color:var(--ink);font:1rem/1.5 system-ui,-apple-system,'Segoe UI',Roboto,\
'Liberation Sans','DejaVu Sans',sans-serif}a{color:var(--accent)}:focus-visible{outline:3px solid var(--focus);\
outline-offset:2px}.app-bar{display:flex;align-items:center;justify-content:space-between;gap:1rem;\
padding:.6rem 1.5rem;background:#17345c;color:#fff}.app-bar a{color:#fff}.app-bar .brand{font-weight:700;\
font-size:1.15rem;letter-spacing:.02em;text-decoration:none}main{display:block;max-width:46rem;margin:2rem auto;\
background:#fff;padding:2rem 2.5rem;border:1px solid var(--line);border-radius:6px}h1{margin-top:0;line-height:1.25}\
label{display:block;font-weight:600;margin:1rem 0 .3rem}input{font:inherit;color:inherit}\
input[type=text]{width:100%;padding:.4rem .5rem;border:1px solid #767f8c;border-radius:4px}\
button{margin-top:1.2rem;font:inherit;padding:.45rem 1.2rem;border:1px solid var(--accent);border-radius:4px;\
background:var(--accent);color:#fff;cursor:pointer}button:hover{background:#173d6f}\
.hint{color:var(--muted);font-size:.9rem;margin:.2rem 0}\
.ok{border-left:6px solid var(--ok);padding:.6rem 1rem;background:#e9f5ec;border-radius:0 4px 4px 0}\
.bad{border-left:6px solid var(--danger);padding:.6rem 1rem;background:#fdf0f0;border-radius:0 4px 4px 0}\
.warn{border-left:6px solid #8a5a00;padding:.6rem 1rem;background:#fdf5e6;border-radius:0 4px 4px 0}\
.ok p,.bad p,.warn p{margin:.2rem 0}code{font-family:ui-monospace,'DejaVu Sans Mono','Liberation Mono',monospace;\
font-size:.9rem;word-break:break-all;background:#f3f5f8;padding:.05rem .3rem;border-radius:3px}\
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.35rem 1.25rem;margin:1.25rem 0}\
dt{font-weight:600}dd{margin:0}.valid{color:var(--ok);font-weight:600}.invalid{color:var(--danger);font-weight:700}\
@media (max-width:600px){main{margin:0;border-radius:0;padding:1.25rem}dl{grid-template-columns:1fr}dd{margin-bottom:.4rem}}";

/// `GET /verify.css`: the verification page's stylesheet.
pub async fn verify_style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        PAGE_STYLE,
    )
        .into_response()
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html lang=\"sv\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} – Protokoll</title><link rel=\"stylesheet\" href=\"/verify.css\"></head>\
         <body><header class=\"app-bar\"><a class=\"brand\" href=\"/\">Protokoll</a>\
         <a href=\"/verify\">Kontrollera ett protokoll</a></header>\
         <main id=\"main\">{body}</main></body></html>"
    ))
}

const FORM: &str = "<h1>Kontrollera ett protokoll</h1>\
<p>Ladda upp en protokollfil (PDF, HTML, Markdown eller JSON) som du har fått från den här \
servern, eller ange protokollets kontrollsumma. Du får veta om filen är oförändrad, vilket \
sammanträde den gäller, om protokollet är justerat och om serverns underskrift stämmer.</p>\
<form method=\"post\" action=\"/verify\" enctype=\"multipart/form-data\">\
<label for=\"file\">Protokollfil</label><input id=\"file\" name=\"file\" type=\"file\">\
<label for=\"hash\">eller kontrollsumma (SHA-256)</label>\
<input id=\"hash\" name=\"hash\" type=\"text\" autocomplete=\"off\" spellcheck=\"false\" \
aria-describedby=\"hash-hint\"><p id=\"hash-hint\" class=\"hint\">64 tecken, 0–9 och a–f. Den står i protokollets \
sidfot och i appen.</p>\
<button type=\"submit\">Kontrollera</button></form>";

#[derive(Deserialize)]
pub struct HashQuery {
    hash: Option<String>,
}

/// `GET /verify`: the form (and, with `?hash=`, the answer).
pub async fn verify_page(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(query): Query<HashQuery>,
) -> Response {
    match query.hash.filter(|h| !h.trim().is_empty()) {
        Some(hash) => {
            let report = match app.verify_gate.ask(ip, std::time::Instant::now()) {
                Ok(()) => check(&app, Presented::Hash(hash)).await,
                Err(refusal) => Err(refused(refusal)),
            };
            result_page(report)
        }
        None => page("Kontrollera ett protokoll", FORM).into_response(),
    }
}

/// `POST /verify`: the form's answer.
pub async fn verify_form(State(app): State<AppState>, ip: ClientIp, request: Request) -> Response {
    let report = match presented(&app, ip, request).await {
        Ok(p) => check(&app, p).await,
        Err(e) => Err(e),
    };
    result_page(report)
}

/// The answer as a page: 200 with the verdict or with what to correct in
/// the form; a limit's status (413, 408, 429, 503 with `Retry-After`) with
/// what to do.
fn result_page(report: Result<VerifyReport, ApiError>) -> Response {
    let title = match &report {
        Ok(r) => match r.status {
            VerifyStatus::Genuine => "Stämmer",
            VerifyStatus::Withdrawn => "Äkta men återkallat",
            VerifyStatus::NoMatch => "Stämmer inte",
        },
        Err(_) => "Kontrollera ett protokoll",
    };
    let (status, retry) = match &report {
        Err(
            e @ (ApiError::TooLarge(_)
            | ApiError::BodyTimeout
            | ApiError::Throttled(..)
            | ApiError::Busy(..)),
        ) => (e.status(), e.retry_after()),
        _ => (axum::http::StatusCode::OK, None),
    };
    let mut response = (status, page(title, &result_html(report))).into_response();
    if let Some(retry) = retry {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry));
    }
    response
}

fn role_sv(role: &str) -> &str {
    protokoll_render::model::role_label(role)
}

/// Who signed off, in Swedish: the account, how it signed in, who vouched
/// for it.
fn signer_sv(by: &crate::finalise::SignedBy) -> String {
    let mut out = format!("konto {}", by.username);
    if let Some(agency) = &by.agency {
        out.push_str(&format!(" ({agency})"));
    }
    out.push_str(match by.signed_in_with.method.as_str() {
        "password" => ", inloggad med lösenord",
        "api_token" => ", inloggad med API-nyckel",
        "command_line" => ", via kommandoraden (en driftansvarig agerade för kontot)",
        _ => "",
    });
    if !matches!(
        by.signed_in_with.method.as_str(),
        "password" | "api_token" | "command_line"
    ) {
        out.push_str(&format!(", inloggad med {}", by.signed_in_with.method));
        for (k, v) in &by.signed_in_with.details {
            out.push_str(&format!(" {k}={v}"));
        }
    }
    match &by.vouched_by {
        Some(v) => match (&v.by, v.via.as_str()) {
            (Some(admin), _) => out.push_str(&format!(
                "; identiteten intygad av administratören {} ({})",
                admin.display_name, admin.username
            )),
            (None, "cli") => {
                out.push_str("; identiteten intygad av en driftansvarig (kommandoraden)")
            }
            (None, "demo") => out.push_str("; demokonto"),
            (None, _) => out.push_str("; kontot skapades av en administratör"),
        },
        None => out.push_str("; ingen har intygat kontots identitet"),
    }
    out
}

fn result_html(report: Result<VerifyReport, ApiError>) -> String {
    let mut out = String::new();
    match report {
        Err(e) => {
            let said = match e {
                ApiError::Invalid(_) | ApiError::Malformed(_) => {
                    "Välj en protokollfil, eller ange en kontrollsumma: 64 tecken, 0–9 och a–f."
                }
                ApiError::TooLarge(_) => "Filen är för stor: en protokollfil är högst 32 MiB.",
                ApiError::Throttled(..) => {
                    "Du har kontrollerat många filer på kort tid. Vänta en stund och försök igen."
                }
                ApiError::BodyTimeout => "Filen kom inte fram i tid. Försök igen.",
                _ => "Något gick fel. Försök igen om en stund.",
            };
            out.push_str(&format!(
                "<h1>Kontrollera ett protokoll</h1><div class=\"bad\" role=\"alert\"><p>{said}</p>\
                 <p lang=\"en\">{}</p></div>",
                escape(&e.to_string())
            ));
        }
        Ok(r) if r.status == VerifyStatus::NoMatch => {
            out.push_str(
                "<h1>Stämmer inte</h1><div class=\"bad\" role=\"alert\"><p><strong>Filen eller \
                 kontrollsumman stämmer inte</strong> med något låst protokoll på den här \
                 servern. Filen kan ha ändrats, eller kommer den från en annan server.</p>\
                 <p lang=\"en\">Does not match.</p></div>",
            );
        }
        Ok(r) => {
            let Some(p) = r.protocol else {
                return String::new();
            };
            let state = match p.state.as_str() {
                "verified" => "Justerat",
                "locked" => "Låst, väntar på justering",
                _ => "Återkallat (skickat tillbaka till utkast)",
            };
            let genuine = if r.matched == Some("export") {
                "Filen är oförändrad: den är en export av ett protokoll på den här servern."
            } else {
                "Kontrollsumman tillhör ett låst protokoll på den här servern."
            };
            if r.status == VerifyStatus::Withdrawn {
                // Genuine, but not the protocol: a justerare rejected this
                // version, or the secretary took it back, before it was
                // verified. Never the green "Stämmer".
                out.push_str(&format!(
                    "<h1>Äkta men återkallat</h1><div class=\"warn\" role=\"alert\">\
                     <p><strong>{genuine}</strong></p><p>Men den här versionen av protokollet \
                     är <strong>återkallad</strong>: den skickades tillbaka till utkast och \
                     gäller inte. Fråga sekreteraren efter den senaste versionen.</p>\
                     <p lang=\"en\">Genuine, but withdrawn: this version of the protocol was \
                     sent back to draft and is not in force. Ask the secretary for the latest \
                     version.</p></div><dl>"
                ));
            } else {
                out.push_str(&format!(
                    "<h1>Stämmer</h1><div class=\"ok\" role=\"status\"><p><strong>{genuine}</strong></p>\
                     <p lang=\"en\">Genuine.</p></div><dl>"
                ));
            }
            let mut row = |k: &str, v: String| out.push_str(&format!("<dt>{k}</dt><dd>{v}</dd>"));
            row("Sammanträde", escape(&p.meeting_title));
            if !p.meeting_body.is_empty() {
                row("Organ", escape(&p.meeting_body));
            }
            if let Some(d) = &p.meeting_date {
                row("Datum", escape(d));
            }
            row("Status", state.to_owned());
            row("Version", p.version.to_string());
            row("Låst", escape(&display_time(&p.locked_at)));
            if let (Some(f), Some(s)) = (&r.format, &r.stage) {
                row(
                    "Fil",
                    format!(
                        "{} ({})",
                        escape(f),
                        if s == "verified" { "justerad" } else { "låst" }
                    ),
                );
            }
            row("Kontrollsumma", format!("<code>{}</code>", escape(&p.hash)));
            for v in &p.required {
                let signed = match &v.signed_at {
                    Some(at) => format!("justerat {}", escape(&display_time(at))),
                    None => "har inte justerat".into(),
                };
                let account = v
                    .signed_by
                    .as_ref()
                    .map(|by| format!("<br><span class=\"hint\">{}</span>", escape(&signer_sv(by))))
                    .unwrap_or_default();
                row(
                    role_sv(&v.role),
                    format!("{}: {signed}{account}", escape(&v.name)),
                );
            }
            match &p.signature {
                Some(s) if s.valid => row(
                    "Underskrift",
                    format!(
                        "<span class=\"valid\">giltig</span> (Ed25519, nyckel <code>{}</code>{})",
                        escape(&s.signature.key_id),
                        match (s.key_status.as_str(), &s.key_retired_at) {
                            ("retired", Some(at)) => format!(
                                "; nyckeln avvecklades {}: den var i bruk när protokollet \
                                 justerades och undertecknar inget nytt",
                                escape(&display_time(at))
                            ),
                            ("in_use", _) => String::new(),
                            _ => "; nyckeln är inte längre i bruk".to_owned(),
                        }
                    ),
                ),
                Some(_) => row(
                    "Underskrift",
                    "<span class=\"invalid\">ogiltig</span>".into(),
                ),
                None => row(
                    "Underskrift",
                    "ingen ännu (protokollet är inte justerat)".into(),
                ),
            }
            out.push_str("</dl>");
        }
    }
    out.push_str("<p><a href=\"/verify\">Kontrollera en annan fil</a></p>");
    out
}
