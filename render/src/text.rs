//! The wording every rendering shares, in Swedish, so that HTML, Markdown
//! and PDF say the same things in the same order.

use crate::model::{Item, Protocol, Rendition, display_time, swedish_date};

/// The header's facts: label and value.
pub fn facts(p: &Protocol) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(date) = &p.meeting.date {
        out.push(("Datum", swedish_date(date)));
    }
    if let Some(time) = &p.meeting.time {
        out.push(("Tid", format!("kl. {time}")));
    }
    if !p.meeting.place.is_empty() {
        out.push(("Plats", p.meeting.place.clone()));
    }
    out
}

/// "Rapport: Polis" under an item written by an agency or a named person;
/// nothing for the secretary's own items.
pub fn owner_line(item: &Item) -> Option<String> {
    if item.owner.is_empty() || item.owner == "Sekreterare" {
        None
    } else {
        Some(format!("Rapport: {}", item.owner))
    }
}

/// The closing lines that tie a rendering to its stored protocol.
pub fn seal_lines(r: Rendition<'_>) -> Vec<(String, String)> {
    let p = r.protocol;
    let mut out = vec![
        (
            "Protokollets kontrollsumma (SHA-256)".to_owned(),
            r.hash.to_owned(),
        ),
        (
            "Låst".to_owned(),
            format!(
                "{} av {} (version {})",
                display_time(&p.locked_at),
                p.locked_by,
                p.version
            ),
        ),
    ];
    if let Some(v) = r.verification {
        out.push(("Justerat".to_owned(), display_time(&v.verified_at)));
        out.push((
            format!("Serverns underskrift (Ed25519, nyckel {})", v.key_id),
            v.signature.clone(),
        ));
    }
    out
}

/// The line under the header that says what this document is.
pub fn status_line(r: Rendition<'_>) -> &'static str {
    if r.verification.is_some() {
        "Justerat"
    } else {
        "Låst för justering"
    }
}

/// Date heading for the PDF's running header.
pub fn header_date(p: &Protocol) -> String {
    p.meeting
        .date
        .as_deref()
        .map(swedish_date)
        .unwrap_or_default()
}
