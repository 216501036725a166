//! The exports of a locked or verified protocol (HTML, Markdown, PDF,
//! JSON): each rendered once per (protocol, stage, format) and kept, at
//! most `MAX_CONCURRENT_RENDERS` at a time, the locked stage's typeset
//! before the lock (a PDF the typesetter refuses is traced to its section).

use std::{sync::Arc, time::Duration};

use protokoll_render::{
    Problem, Protocol, Rendition, SignOff, Verification,
    limits::{ItemRef, ProblemKind},
    pdf::PdfError,
    to_canonical_json,
};

use super::{FinaliseError, Lifecycle, parse, rfc3339, sha256_hex, signing};
use crate::{
    meeting::MeetingId,
    store::{NewRendition, ProtocolRecord, StoredRendition},
};

/// Renderings (above all PDFs) that may run at once in this process. One
/// PDF of the largest protocol the bounds allow takes about 300 MB and 3 s
/// of the typesetter; each (protocol, stage, format) is rendered once in
/// its life, so queueing costs only the first download of each.
pub const MAX_CONCURRENT_RENDERS: usize = 1;

/// How long a download waits for its turn to render before it is answered
/// 503 with `Retry-After`.
pub const RENDER_WAIT: Duration = Duration::from_secs(30);

static RENDERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_RENDERS);

/// A rendition being made, by (protocol, stage, format): a download of the
/// same file waits for it rather than render it again.
type RenditionKey = (uuid::Uuid, &'static str, &'static str);

// std Mutex: only looked up and changed, never held across an await; the
// per-file tokio Mutex inside is what is held while rendering.
static IN_PROGRESS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<RenditionKey, Arc<tokio::sync::Mutex<()>>>>,
> = std::sync::LazyLock::new(Default::default);

/// Holds the right to make one rendition; forgets it when the last holder
/// is done.
struct Making {
    key: RenditionKey,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Making {
    async fn start(key: RenditionKey) -> Self {
        let lock = IN_PROGRESS
            .lock()
            .expect("renditions in progress")
            .entry(key)
            .or_default()
            .clone();
        Self {
            key,
            _turn: lock.lock_owned().await,
        }
    }
}

impl Drop for Making {
    fn drop(&mut self) {
        let mut map = IN_PROGRESS.lock().expect("renditions in progress");
        // Only this guard's Arc and the map's: nobody else waits.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) <= 2)
        {
            map.remove(&self.key);
        }
    }
}
/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Markdown,
    Pdf,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "html" => Some(Format::Html),
            "md" | "markdown" => Some(Format::Markdown),
            "pdf" => Some(Format::Pdf),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Markdown => "md",
            Format::Pdf => "pdf",
            Format::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Pdf => "application/pdf",
            Format::Json => "application/json",
        }
    }
}

/// An export file.
pub struct Export {
    pub bytes: Vec<u8>,
    pub format: Format,
    pub filename: String,
    pub sha256: String,
    pub protocol_hash: String,
}

impl Lifecycle<'_> {
    /// An export of the meeting's locked or verified protocol: rendered
    /// once and kept (its SHA-256 remembered, so that the file can be
    /// verified later), then handed out as kept.
    pub async fn export(
        &self,
        meeting: MeetingId,
        format: Format,
    ) -> Result<Export, FinaliseError> {
        let record = match self.db.protocols.current(meeting).await? {
            Some(r) if r.meeting_state != "draft" => r,
            _ => return Err(FinaliseError::Conflict("the protocol is not locked")),
        };
        let stage = if record.signature.is_some() {
            "verified"
        } else {
            "locked"
        };
        let (bytes, sha256) = match format {
            Format::Json => {
                let bytes = record.protocol.canonical.clone().into_bytes();
                let sha256 = sha256_hex(&bytes);
                self.db
                    .protocols
                    .record_export(&sha256, record.protocol.id, stage, format.extension())
                    .await?;
                (bytes, sha256)
            }
            _ => {
                let kept = self.rendition(&record, stage, format).await?;
                (kept.bytes, kept.sha256)
            }
        };
        let date = parse(&record)?.meeting.date.unwrap_or_default();
        let filename = format!(
            "protokoll-{}{}-v{}.{}",
            if date.is_empty() {
                String::new()
            } else {
                format!("{date}-")
            },
            &record.protocol.hash[..8],
            record.protocol.version,
            format.extension()
        );
        Ok(Export {
            bytes,
            format,
            filename,
            sha256,
            protocol_hash: record.protocol.hash,
        })
    }

    /// The kept rendition, or a new one rendered (in turn with every other
    /// rendering of this process) and kept.
    async fn rendition(
        &self,
        record: &ProtocolRecord,
        stage: &'static str,
        format: Format,
    ) -> Result<StoredRendition, FinaliseError> {
        let protocols = &self.db.protocols;
        let id = record.protocol.id;
        let ext = format.extension();
        if let Some(kept) = protocols.rendition(id, stage, ext).await? {
            return Ok(kept);
        }
        // One request makes it; the others wait for it, then read it.
        let _making = tokio::time::timeout(RENDER_WAIT, Making::start((id, stage, ext)))
            .await
            .map_err(|_| FinaliseError::Busy)?;
        if let Some(kept) = protocols.rendition(id, stage, ext).await? {
            return Ok(kept);
        }
        let permit = tokio::time::timeout(RENDER_WAIT, RENDERS.acquire())
            .await
            .map_err(|_| FinaliseError::Busy)?
            .expect("the render semaphore is never closed");
        let protocol = parse(record)?;
        let verification = record.signature.as_ref().map(|s| Verification {
            signoffs: record
                .signoffs
                .iter()
                .map(|o| SignOff {
                    name: o.name.clone(),
                    role: o.role.clone(),
                    at: rfc3339(o.signed_at),
                })
                .collect(),
            verified_at: rfc3339(s.verified_at),
            key_id: s.key_id.clone(),
            signature: signing::base64(&s.signature),
        });
        let hash = record.protocol.hash.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            render(
                Rendition {
                    protocol: &protocol,
                    hash: &hash,
                    verification: verification.as_ref(),
                },
                format,
            )
        })
        .await
        .map_err(|e| FinaliseError::Render(e.to_string()))??;
        // The permit bounds the typesetter's memory; keeping the file is a
        // database write, which must never wait on a rendering (a lock
        // holds the database while it typesets).
        drop(permit);
        Ok(protocols
            .keep_rendition(
                id,
                NewRendition {
                    stage,
                    format: ext,
                    sha256: sha256_hex(&bytes),
                    bytes,
                },
            )
            .await?)
    }
}

/// One export of a protocol, counted and timed.
fn render(r: Rendition<'_>, format: Format) -> Result<Vec<u8>, FinaliseError> {
    use crate::telemetry::metric;
    let stage = if r.verification.is_some() {
        "verified"
    } else {
        "locked"
    };
    metrics::counter!(metric::PROTOCOL_RENDERS, "format" => format.extension(), "stage" => stage)
        .increment(1);
    let started = std::time::Instant::now();
    let rendered = render_uncounted(r, format);
    metrics::histogram!(metric::PROTOCOL_RENDER_SECONDS, "format" => format.extension())
        .record(started.elapsed().as_secs_f64());
    rendered
}

fn render_uncounted(r: Rendition<'_>, format: Format) -> Result<Vec<u8>, FinaliseError> {
    match format {
        Format::Json => to_canonical_json(r.protocol)
            .map(String::into_bytes)
            .map_err(|e| FinaliseError::Render(e.to_string())),
        Format::Html => Ok(protokoll_render::html::render(r).into_bytes()),
        Format::Markdown => Ok(protokoll_render::markdown::render(r).into_bytes()),
        Format::Pdf => protokoll_render::pdf::render(r).map_err(|e| match e {
            PdfError::Limit(problem) => FinaliseError::Unarchivable(problem),
            other => FinaliseError::Render(other.to_string()),
        }),
    }
}

/// The locked stage's exports, typeset in turn with every other rendering
/// of this process, on a blocking thread. A PDF the typesetter refuses is
/// traced to the section that makes it fail, where one does.
pub(super) async fn typeset(
    protocol: &Protocol,
    hash: &str,
) -> Result<Vec<NewRendition>, FinaliseError> {
    let _permit = RENDERS
        .acquire()
        .await
        .expect("the render semaphore is never closed");
    let protocol = protocol.clone();
    let hash = hash.to_owned();
    tokio::task::spawn_blocking(move || {
        let r = Rendition {
            protocol: &protocol,
            hash: &hash,
            verification: None,
        };
        let mut out = Vec::with_capacity(3);
        for format in [Format::Html, Format::Markdown, Format::Pdf] {
            let bytes = match render(r, format) {
                Ok(bytes) => bytes,
                Err(FinaliseError::Render(message)) => {
                    return Err(FinaliseError::Unarchivable(culprit(&protocol, message)));
                }
                Err(e) => return Err(e),
            };
            out.push(NewRendition {
                stage: "locked",
                format: format.extension(),
                sha256: sha256_hex(&bytes),
                bytes,
            });
        }
        Ok(out)
    })
    .await
    .map_err(|e| FinaliseError::Render(e.to_string()))?
}

/// The first agenda item that the typesetter refuses on its own, with its
/// message; the protocol as a whole when none does.
fn culprit(protocol: &Protocol, message: String) -> Problem {
    for item in &protocol.agenda {
        let mut alone = protocol.clone();
        alone.agenda = vec![item.clone()];
        let r = Rendition {
            protocol: &alone,
            hash: "0",
            verification: None,
        };
        if let Err(e) = protokoll_render::pdf::render(r) {
            return Problem {
                item: Some(ItemRef::of(item)),
                kind: ProblemKind::Typeset {
                    message: e.to_string(),
                },
            };
        }
    }
    Problem {
        item: None,
        kind: ProblemKind::Typeset { message },
    }
}
