//! Verifying a protocol file or hash (no sign-in), within the upload
//! limits of the client's address, and publishing the server's signing
//! keys.

use axum::{
    Json,
    extract::{FromRequest, Multipart, Path, Request, State},
    http::header,
};
use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::lifecycle;
use crate::{
    finalise::{VerifyReport, signing},
    http::{AppState, client::ClientIp, error::ApiError, uploads},
};

/// Largest file `POST /api/verify` and `/verify` accept.
pub const MAX_VERIFY_BYTES: usize = 32 * 1024 * 1024;

/// What a multipart form may add around the file (boundaries, headers, a
/// hash field).
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// Most a request to the verification routes may send: the file and its
/// form.
pub const MAX_VERIFY_REQUEST_BYTES: usize = MAX_VERIFY_BYTES + MULTIPART_OVERHEAD;

/// What a verification request carried: a file (as its SHA-256, hashed
/// while it arrived) or a hash typed in.
pub(super) enum Presented {
    File(String),
    Hash(String),
}

/// Longest `hash` form field read; a SHA-256 in hex is 64 characters.
const MAX_HASH_FIELD: usize = 1024;

/// The gate's refusal as an answer.
pub(super) fn refused(refusal: uploads::Refusal) -> ApiError {
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
pub(super) async fn presented(
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

pub(super) async fn check(app: &AppState, presented: Presented) -> Result<VerifyReport, ApiError> {
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
