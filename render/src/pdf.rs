//! The protocol as PDF/A-2b, typeset by Typst used as a library.
//!
//! The Typst "world" is sealed: one template compiled into the binary, one
//! JSON file of data, the bundled Libertinus Serif fonts and nothing else
//! (no system fonts, no files, no packages, no network). The clock is the
//! protocol's own time, the document id is derived from the protocol's
//! hash, and the creator string is fixed, so the same protocol gives the
//! same bytes in every process. User text enters only as JSON string
//! values, which Typst shows as text and never evaluates.

use std::sync::LazyLock;

use serde::Serialize;
use typst::{
    Library, LibraryExt, World,
    diag::{FileError, FileResult},
    foundations::{Bytes, Datetime, Duration, Smart},
    syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot},
    text::{Font, FontBook},
    utils::LazyHash,
};
use typst_layout::PagedDocument;
use typst_pdf::{PdfOptions, PdfStandard, PdfStandards, Timestamp};

use crate::model::{Block, Inline, ListItem, Rendition, display_time, role_label};
use crate::text;

const TEMPLATE: &str = include_str!("protocol.typ");

/// What the PDF's metadata names as its creator. Fixed, so that upgrading
/// Typst does not by itself change every document's bytes.
pub const CREATOR: &str = "Protokoll";

static FONT_FILES: [&[u8]; 4] = [
    include_bytes!("../fonts/LibertinusSerif-Regular.otf"),
    include_bytes!("../fonts/LibertinusSerif-Italic.otf"),
    include_bytes!("../fonts/LibertinusSerif-Semibold.otf"),
    include_bytes!("../fonts/LibertinusSerif-SemiboldItalic.otf"),
];

struct Fonts {
    book: LazyHash<FontBook>,
    fonts: Vec<Font>,
}

static FONTS: LazyLock<Fonts> = LazyLock::new(|| {
    let fonts: Vec<Font> = FONT_FILES
        .iter()
        .flat_map(|data| Font::iter(Bytes::new(*data)))
        .collect();
    Fonts {
        book: LazyHash::new(FontBook::from_fonts(&fonts)),
        fonts,
    }
});

static LIBRARY: LazyLock<LazyHash<Library>> =
    LazyLock::new(|| LazyHash::new(Library::builder().build()));

fn file_id(path: &str) -> FileId {
    RootedPath::new(
        VirtualRoot::Project,
        VirtualPath::new(path).expect("a valid literal path"),
    )
    .intern()
}

static MAIN: LazyLock<Source> =
    LazyLock::new(|| Source::new(file_id("/main.typ"), TEMPLATE.to_owned()));
static DATA: LazyLock<FileId> = LazyLock::new(|| file_id("/data.json"));

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("the protocol could not be typeset: {0}")]
    Typeset(String),
    #[error("the PDF could not be written: {0}")]
    Export(String),
    #[error("bad timestamp {0:?}")]
    Timestamp(String),
}

struct ProtocolWorld {
    data: Bytes,
    today: Datetime,
}

impl World for ProtocolWorld {
    fn library(&self) -> &LazyHash<Library> {
        &LIBRARY
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &FONTS.book
    }

    fn main(&self) -> FileId {
        MAIN.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == MAIN.id() {
            Ok(MAIN.clone())
        } else {
            Err(FileError::NotFound(id.vpath().get_with_slash().into()))
        }
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if id == *DATA {
            Ok(self.data.clone())
        } else {
            Err(FileError::NotFound(id.vpath().get_with_slash().into()))
        }
    }

    fn font(&self, index: usize) -> Option<Font> {
        FONTS.fonts.get(index).cloned()
    }

    fn today(&self, _offset: Option<Duration>) -> Option<Datetime> {
        Some(self.today)
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (what the canonical form stores).
fn datetime(rfc3339: &str) -> Result<Datetime, PdfError> {
    let bad = || PdfError::Timestamp(rfc3339.to_owned());
    let s = rfc3339.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    let [y, mo, da] = d[..] else {
        return Err(bad());
    };
    let [h, mi, se] = t[..] else {
        return Err(bad());
    };
    let num = |s: &str| s.parse::<u8>().map_err(|_| bad());
    // Fractions of a second are not part of the canonical form; drop any.
    let se = se.split('.').next().unwrap_or(se);
    Datetime::from_ymd_hms(
        y.parse().map_err(|_| bad())?,
        num(mo)?,
        num(da)?,
        num(h)?,
        num(mi)?,
        num(se)?,
    )
    .ok_or_else(bad)
}

/// Renders the PDF/A-2b file. Its time stamp is the verification time for
/// a verified protocol and the lock time otherwise.
pub fn render(r: Rendition<'_>) -> Result<Vec<u8>, PdfError> {
    let when = r
        .verification
        .map(|v| v.verified_at.as_str())
        .unwrap_or(&r.protocol.locked_at);
    let today = datetime(when)?;
    let view = View::new(r);
    let data = serde_json::to_vec(&view).map_err(|e| PdfError::Typeset(e.to_string()))?;
    let world = ProtocolWorld {
        data: Bytes::new(data),
        today,
    };
    let compiled = typst::compile::<PagedDocument>(&world);
    let document = compiled.output.map_err(|errors| {
        PdfError::Typeset(
            errors
                .iter()
                .map(|e| e.message.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let standards =
        PdfStandards::new(&[PdfStandard::A_2b]).map_err(|e| PdfError::Export(format!("{e:?}")))?;
    let options = PdfOptions {
        ident: Smart::Custom(format!("protokoll:{}:{}", r.hash, stage(r))),
        creator: Smart::Custom(Some(CREATOR.to_owned())),
        timestamp: Some(Timestamp::new_utc(today)),
        standards,
        ..PdfOptions::default()
    };
    let pdf = typst_pdf::pdf(&document, &options).map_err(|errors| {
        PdfError::Export(
            errors
                .iter()
                .map(|e| e.message.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    });
    // Typst memoises across compilations; without eviction a long-running
    // server would keep every protocol it ever rendered.
    typst::comemo::evict(0);
    pdf
}

fn stage(r: Rendition<'_>) -> &'static str {
    if r.verification.is_some() {
        "verified"
    } else {
        "locked"
    }
}

/// Replaces characters the bundled fonts cannot show (emoji, most
/// non-Latin scripts) with U+FFFD: PDF/A forbids the empty ".notdef"
/// glyph, so such text would otherwise make the export fail. The HTML and
/// Markdown exports and the canonical form keep the exact text.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '\n' || c == '\t' {
                ' '
            } else if c.is_control() {
                '\u{FFFD}'
            } else if c.is_whitespace()
                || FONTS
                    .fonts
                    .iter()
                    .any(|f| f.info().coverage.contains(c as u32))
            {
                c
            } else {
                '\u{FFFD}'
            }
        })
        .collect()
}

/// The data the template reads, with every display string prepared here.
#[derive(Serialize)]
struct View {
    title: String,
    author: String,
    body: String,
    header_left: String,
    header_right: String,
    hash: String,
    facts: Vec<Fact>,
    status: &'static str,
    status_color: &'static str,
    attendance: Vec<GroupView>,
    items: Vec<ItemView>,
    signatures: Vec<SignatureView>,
    seal: Vec<Fact>,
    verify_hint: &'static str,
}

#[derive(Serialize)]
struct Fact {
    label: String,
    value: String,
}

#[derive(Serialize)]
struct GroupView {
    agency: String,
    people: Vec<String>,
}

#[derive(Serialize)]
struct ItemView {
    level: u8,
    number: String,
    title: String,
    owner_line: Option<String>,
    content: Vec<Block>,
}

#[derive(Serialize)]
struct SignatureView {
    caption: &'static str,
    name: String,
    role: String,
    signed: Option<String>,
}

impl View {
    fn new(r: Rendition<'_>) -> Self {
        let p = r.protocol;
        let verified = r.verification.is_some();
        let mut signatures: Vec<SignatureView> = p
            .secretaries
            .iter()
            .map(|s| SignatureView {
                caption: "Vid protokollet",
                name: printable(&s.name),
                role: "Sekreterare".into(),
                signed: None,
            })
            .collect();
        for v in &p.verifiers {
            let signed = r.verification.and_then(|ver| {
                ver.signoffs
                    .iter()
                    .find(|s| s.name == v.name && s.role == v.role)
                    .map(|s| format!("Justerat elektroniskt {}", display_time(&s.at)))
            });
            signatures.push(SignatureView {
                caption: "Justeras",
                name: printable(&v.name),
                role: role_label(&v.role).into(),
                signed,
            });
        }
        Self {
            title: printable(&p.meeting.title),
            author: printable(
                &p.secretaries
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            body: printable(&p.meeting.body),
            header_left: printable(if p.meeting.body.is_empty() {
                &p.meeting.title
            } else {
                &p.meeting.body
            }),
            header_right: format!("Protokoll {}", text::header_date(p)),
            hash: r.hash.to_owned(),
            facts: text::facts(p)
                .into_iter()
                .map(|(label, value)| Fact {
                    label: label.into(),
                    value: printable(&value),
                })
                .collect(),
            status: text::status_line(r),
            status_color: if verified { "#1d5e2c" } else { "#8a5a00" },
            attendance: text::attendance(p)
                .into_iter()
                .map(|(agency, people)| GroupView {
                    agency: printable(&agency),
                    people: people.iter().map(String::as_str).map(printable).collect(),
                })
                .collect(),
            items: p
                .agenda
                .iter()
                .map(|item| ItemView {
                    level: if item.number.contains('.') { 2 } else { 1 },
                    number: printable(&item.number),
                    title: printable(&item.title),
                    owner_line: text::owner_line(item).map(|o| printable(&o)),
                    content: item.content.iter().map(printable_block).collect(),
                })
                .collect(),
            signatures,
            seal: text::seal_lines(r)
                .into_iter()
                .map(|(label, value)| Fact {
                    label: printable(&label),
                    value: printable(&value),
                })
                .collect(),
            verify_hint: "Kontrollera att filen är oförändrad: ladda upp den på serverns \
                sida /verify eller ange kontrollsumman där.",
        }
    }
}

fn printable_block(block: &Block) -> Block {
    let inlines = |content: &[Inline]| -> Vec<Inline> {
        content
            .iter()
            .map(|i| match i {
                Inline::HardBreak => Inline::HardBreak,
                Inline::Text { text, marks } => Inline::Text {
                    text: printable(text),
                    marks: marks.clone(),
                },
            })
            .collect()
    };
    let items = |content: &[ListItem]| -> Vec<ListItem> {
        content
            .iter()
            .map(|i| ListItem {
                content: i.content.iter().map(printable_block).collect(),
            })
            .collect()
    };
    match block {
        Block::Paragraph { content } => Block::Paragraph {
            content: inlines(content),
        },
        Block::Heading { level, content } => Block::Heading {
            level: *level,
            content: inlines(content),
        },
        Block::BulletList { content } => Block::BulletList {
            content: items(content),
        },
        Block::OrderedList { start, content } => Block::OrderedList {
            start: *start,
            content: items(content),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn renders_the_same_bytes_twice_and_claims_pdf_a_2b() {
        let p = testdata::small();
        let r = Rendition {
            protocol: &p,
            hash: "0123456789abcdef",
            verification: None,
        };
        let first = render(r).unwrap();
        let second = render(r).unwrap();
        assert!(first.starts_with(b"%PDF-"));
        assert_eq!(first, second);
        let text = String::from_utf8_lossy(&first);
        assert!(text.contains("pdfaid:part"), "XMP names the PDF/A part");
    }

    #[test]
    fn hostile_text_is_typeset_as_text() {
        let p = testdata::hostile();
        let pdf = render(Rendition {
            protocol: &p,
            hash: "abc",
            verification: None,
        });
        assert!(pdf.is_ok(), "{:?}", pdf.err());
    }

    #[test]
    fn characters_without_glyphs_become_replacement_characters() {
        assert_eq!(printable("Hej 😀 då"), "Hej \u{FFFD} då");
        assert_eq!(printable("Åäö é ß"), "Åäö é ß");
    }
}
