//! The canonical protocol: what a locked protocol says, as plain data.
//!
//! This is the one form that is hashed and signed. Every export (HTML,
//! Markdown, PDF) is rendered from it and nothing else, so two renderings of
//! the same protocol can only differ if the renderer changed. The shape
//! follows ProseMirror's JSON for section bodies (`type`, `content`,
//! `marks`), over a closed set of nodes and marks.

use serde::{Deserialize, Serialize};

/// Version tag of the canonical form. A future change of shape gets a new
/// tag; a stored protocol keeps the one it was locked with.
pub const FORMAT: &str = "protokoll/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protocol {
    /// Always [`FORMAT`] for this version.
    pub format: String,
    pub meeting: MeetingInfo,
    /// Everyone who took part, sorted by role (chair, secretary, justerare,
    /// members), then by name.
    pub participants: Vec<Person>,
    /// The agenda in order, with each item's text.
    pub agenda: Vec<Item>,
    /// Who wrote the protocol (the meeting's secretaries).
    pub secretaries: Vec<Person>,
    /// Who must sign it off: the chair and every justerare, as at the lock.
    pub verifiers: Vec<Person>,
    /// When the protocol was locked, RFC 3339 in UTC with seconds.
    pub locked_at: String,
    /// Who locked it.
    pub locked_by: String,
    /// 1 for the first lock of a meeting, 2 after a rejection and a new
    /// lock, and so on.
    pub version: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingInfo {
    pub id: String,
    pub title: String,
    /// The body that met ("Lokala Brå Hägersten-Liljeholmen"); may be empty.
    pub body: String,
    /// `YYYY-MM-DD`, if set.
    pub date: Option<String>,
    /// `HH:MM`, if set.
    pub time: Option<String>,
    pub place: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    pub name: String,
    /// `secretary`, `chair`, `justerare` or `member`.
    pub role: String,
    pub agency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    /// The § number as shown, frozen at the lock.
    pub number: String,
    pub title: String,
    /// Who wrote the item: an agency's or person's name, or "Sekreterare".
    pub owner: String,
    pub content: Vec<Block>,
}

/// Block nodes of a section body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Block {
    Paragraph { content: Vec<Inline> },
    Heading { level: u8, content: Vec<Inline> },
    BulletList { content: Vec<ListItem> },
    OrderedList { start: u32, content: Vec<ListItem> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "listItem")]
pub struct ListItem {
    pub content: Vec<Block>,
}

/// Inline nodes: text runs with marks, and hard line breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Inline {
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        marks: Vec<Mark>,
    },
    HardBreak,
}

/// Marks, always listed in this order (bold, italic, link).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Mark {
    Bold,
    Italic,
    /// Only `http:`, `https:` and `mailto:` targets are kept.
    Link {
        href: String,
    },
}

/// A sign-off, as shown in a verified protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOff {
    pub name: String,
    /// `chair` or `justerare`.
    pub role: String,
    /// RFC 3339 in UTC with seconds.
    pub at: String,
}

/// What a verified protocol adds: the sign-offs and the server's signature
/// over them and the protocol's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub signoffs: Vec<SignOff>,
    /// When the last sign-off came in.
    pub verified_at: String,
    pub key_id: String,
    /// Base64 of the Ed25519 signature.
    pub signature: String,
}

/// Everything a rendering shows: the protocol, its hash, and the
/// verification once there is one.
#[derive(Debug, Clone, Copy)]
pub struct Rendition<'a> {
    pub protocol: &'a Protocol,
    /// SHA-256 (hex) of the canonical JSON.
    pub hash: &'a str,
    pub verification: Option<&'a Verification>,
}

impl Block {
    /// Plain text of a block, for tests and summaries.
    pub fn plain_text(&self) -> String {
        let mut out = String::new();
        self.push_text(&mut out);
        out
    }

    fn push_text(&self, out: &mut String) {
        match self {
            Block::Paragraph { content } | Block::Heading { content, .. } => {
                for inline in content {
                    match inline {
                        Inline::Text { text, .. } => out.push_str(text),
                        Inline::HardBreak => out.push('\n'),
                    }
                }
            }
            Block::BulletList { content } | Block::OrderedList { content, .. } => {
                for item in content {
                    for block in &item.content {
                        if !out.is_empty() {
                            out.push('\n');
                        }
                        block.push_text(out);
                    }
                }
            }
        }
    }
}

/// Swedish names of the roles, as protocols write them.
pub fn role_label(role: &str) -> &str {
    match role {
        "chair" => "Ordförande",
        "secretary" => "Sekreterare",
        "justerare" => "Justerare",
        "member" => "Ledamot",
        other => other,
    }
}

/// `2018-03-09` as "9 mars 2018"; anything else unchanged.
pub fn swedish_date(date: &str) -> String {
    const MONTHS: [&str; 12] = [
        "januari",
        "februari",
        "mars",
        "april",
        "maj",
        "juni",
        "juli",
        "augusti",
        "september",
        "oktober",
        "november",
        "december",
    ];
    let parts: Vec<&str> = date.split('-').collect();
    if let [y, m, d] = parts[..]
        && let (Ok(m), Ok(d)) = (m.parse::<usize>(), d.parse::<u32>())
        && (1..=12).contains(&m)
    {
        return format!("{d} {} {y}", MONTHS[m - 1]);
    }
    date.to_owned()
}

/// An RFC 3339 UTC time (`2018-03-12T14:05:09Z`) as shown in a protocol:
/// `2018-03-12 14:05 UTC`.
pub fn display_time(rfc3339: &str) -> String {
    match rfc3339.split_once('T') {
        Some((date, rest)) if rest.len() >= 5 => format!("{date} {} UTC", &rest[..5]),
        _ => rfc3339.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_swedish() {
        assert_eq!(swedish_date("2018-03-09"), "9 mars 2018");
        assert_eq!(swedish_date("2018-12-31"), "31 december 2018");
        assert_eq!(swedish_date("nonsense"), "nonsense");
        assert_eq!(swedish_date("2018-13-01"), "2018-13-01");
    }

    #[test]
    fn times_drop_seconds() {
        assert_eq!(display_time("2018-03-12T14:05:09Z"), "2018-03-12 14:05 UTC");
    }

    #[test]
    fn blocks_serialise_like_prosemirror_json() {
        let block = Block::Paragraph {
            content: vec![Inline::Text {
                text: "Hej".into(),
                marks: vec![Mark::Bold],
            }],
        };
        assert_eq!(
            serde_json::to_string(&block).unwrap(),
            r#"{"type":"paragraph","content":[{"type":"text","text":"Hej","marks":[{"type":"bold"}]}]}"#
        );
    }
}
