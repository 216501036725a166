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

use crate::limits::{self, MAX_LINK_BYTES, MAX_UNBROKEN_CHARS, Problem};
use crate::model::{Block, Inline, ListItem, Mark, Rendition, display_time, role_label};
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
    /// The protocol asks more of the typesetter than it is given (see
    /// [`crate::limits`]).
    #[error("the protocol cannot be typeset: {0}")]
    Limit(Problem),
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
/// a verified protocol and the lock time otherwise. A protocol beyond the
/// bounds of [`crate::limits`] is refused before anything is typeset.
pub fn render(r: Rendition<'_>) -> Result<Vec<u8>, PdfError> {
    limits::check_size(r.protocol).map_err(PdfError::Limit)?;
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

/// At most `max` characters of `s`, with an ellipsis if cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
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
///
/// A run of more than [`MAX_UNBROKEN_CHARS`] characters without a space
/// gets a break opportunity (U+200B) after every that many: Typst does not
/// break inside a word, and one overflowing line of more than 8,191 glyphs
/// is not valid PDF/A.
fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run = 0;
    for c in s.chars() {
        let c = if c == '\n' || c == '\t' || c == '\r' {
            ' '
        } else if c.is_control() || !shows(c) {
            '\u{FFFD}'
        } else {
            c
        };
        if c.is_whitespace() || c == '-' {
            run = 0;
        } else {
            run += 1;
            if run > MAX_UNBROKEN_CHARS {
                out.push('\u{200B}');
                run = 1;
            }
        }
        out.push(c);
    }
    out
}

/// Whether the PDF can show `c`: a glyph in the bundled fonts, or a space.
/// Characters of the private use areas and Unicode's non-characters are
/// refused by PDF/A whatever the font holds.
fn shows(c: char) -> bool {
    let u = c as u32;
    let private = (0xE000..=0xF8FF).contains(&u) || u >= 0xF0000;
    let noncharacter = (0xFDD0..=0xFDEF).contains(&u) || u & 0xFFFE == 0xFFFE;
    if private || noncharacter {
        return false;
    }
    c.is_whitespace() || FONTS.fonts.iter().any(|f| f.info().coverage.contains(u))
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
            // PDF/A allows no metadata string over 32,767 bytes.
            author: printable(&truncate(
                &p.secretaries
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                1_000,
            )),
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
                    content: printable_blocks(&item.content),
                })
                .collect(),
            signatures,
            seal: text::seal_lines(r)
                .into_iter()
                .map(|line| Fact {
                    label: printable(&line.label),
                    value: printable(&line.value),
                })
                .collect(),
            verify_hint: "Kontrollera att filen är oförändrad: ladda upp den på serverns \
                sida /verify eller ange kontrollsumman där.",
        }
    }
}

/// Most text of one paragraph as the PDF lays it out; a longer paragraph
/// is typeset as several. Typst breaks a paragraph into lines as a whole,
/// and its time grows faster than the paragraph (measured: 20,000
/// formatted pieces in one paragraph 2.5 s, 40,000 in one 9.6 s; split,
/// they cost what their text costs). Real paragraphs are far shorter.
pub const MAX_PARAGRAPH_BYTES: usize = 8 * 1024;
/// Most inline nodes of one paragraph as the PDF lays it out.
pub const MAX_PARAGRAPH_INLINES: usize = 500;

fn printable_inline(inline: &Inline) -> Inline {
    match inline {
        Inline::HardBreak => Inline::HardBreak,
        Inline::Text { text, marks } => Inline::Text {
            text: printable(text),
            // Typst refuses links longer than 8,000 bytes; a protocol
            // locked before links were bounded shows such a link as its
            // text.
            marks: marks
                .iter()
                .filter(|m| !matches!(m, Mark::Link { href } if href.len() > MAX_LINK_BYTES))
                .cloned()
                .collect(),
        },
    }
}

/// The inlines of one paragraph in pieces of at most
/// [`MAX_PARAGRAPH_BYTES`] and [`MAX_PARAGRAPH_INLINES`]; a text longer
/// than a piece is cut at a space where there is one.
fn pieces(content: &[Inline]) -> Vec<Vec<Inline>> {
    let mut out: Vec<Vec<Inline>> = vec![Vec::new()];
    let mut bytes = 0;
    for inline in content {
        let Inline::Text { text, marks } = printable_inline(inline) else {
            out.last_mut().expect("a piece").push(Inline::HardBreak);
            continue;
        };
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let piece = out.last_mut().expect("a piece");
            if bytes >= MAX_PARAGRAPH_BYTES || piece.len() >= MAX_PARAGRAPH_INLINES {
                out.push(Vec::new());
                bytes = 0;
                continue;
            }
            let room = MAX_PARAGRAPH_BYTES - bytes;
            let take = if rest.len() <= room {
                rest.len()
            } else {
                let mut cut = room;
                while !rest.is_char_boundary(cut) {
                    cut -= 1;
                }
                match rest[..cut].rfind(' ') {
                    Some(space) if space > 0 => space + 1,
                    _ if cut > 0 => cut,
                    // Not even one character fits: start a new piece.
                    _ => {
                        bytes = MAX_PARAGRAPH_BYTES;
                        continue;
                    }
                }
            };
            piece.push(Inline::Text {
                text: rest[..take].to_owned(),
                marks: marks.clone(),
            });
            bytes += take;
            rest = &rest[take..];
        }
    }
    out.retain(|piece| !piece.is_empty());
    out
}

fn printable_blocks(blocks: &[Block]) -> Vec<Block> {
    let mut out = Vec::with_capacity(blocks.len());
    for block in blocks {
        match block {
            Block::Paragraph { content } => out.extend(
                pieces(content)
                    .into_iter()
                    .map(|content| Block::Paragraph { content }),
            ),
            Block::Heading { level, content } => {
                out.extend(pieces(content).into_iter().map(|content| Block::Heading {
                    level: *level,
                    content,
                }))
            }
            Block::BulletList { content } => out.push(Block::BulletList {
                content: printable_items(content),
            }),
            Block::OrderedList { start, content } => out.push(Block::OrderedList {
                start: *start,
                content: printable_items(content),
            }),
        }
    }
    out
}

fn printable_items(items: &[ListItem]) -> Vec<ListItem> {
    items
        .iter()
        .map(|i| ListItem {
            content: printable_blocks(&i.content),
        })
        .collect()
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
        assert_eq!(printable("a\u{E000}b\u{FFFE}c"), "a\u{FFFD}b\u{FFFD}c");
    }

    #[test]
    fn a_long_word_gets_break_opportunities() {
        let word = "a".repeat(MAX_UNBROKEN_CHARS * 3);
        let shown = printable(&word);
        assert_eq!(shown.matches('\u{200B}').count(), 2);
        assert_eq!(shown.replace('\u{200B}', ""), word);
        assert_eq!(printable("kort ord"), "kort ord");
    }

    #[test]
    fn long_paragraphs_are_typeset_in_pieces_with_all_their_text() {
        let text = "Inbrott ökar. ".repeat(3 * MAX_PARAGRAPH_BYTES / 14);
        let many: Vec<Inline> = (0..MAX_PARAGRAPH_INLINES + 10)
            .map(|i| Inline::Text {
                text: format!("{i} "),
                marks: if i % 2 == 0 { vec![Mark::Bold] } else { vec![] },
            })
            .collect();
        for content in [
            vec![Inline::Text {
                text: text.clone(),
                marks: vec![],
            }],
            many,
        ] {
            let original = Block::Paragraph {
                content: content.clone(),
            };
            let shown = printable_blocks(std::slice::from_ref(&original));
            assert!(shown.len() > 1, "split into several paragraphs");
            let joined: String = shown.iter().map(Block::plain_text).collect();
            assert_eq!(joined, original.plain_text());
            for block in &shown {
                let Block::Paragraph { content } = block else {
                    panic!("a paragraph stays a paragraph");
                };
                assert!(content.len() <= MAX_PARAGRAPH_INLINES);
                assert!(Block::plain_text(block).len() <= MAX_PARAGRAPH_BYTES);
            }
        }
    }

    #[test]
    fn a_link_too_long_for_typst_is_shown_as_its_text() {
        // Issue 24: an 8,200-character link locked before links were
        // bounded made `protocol.pdf` fail for ever ("URL is too long").
        let mut p = testdata::small();
        p.agenda[1].content = vec![Block::Paragraph {
            content: vec![Inline::Text {
                text: "karta".into(),
                marks: vec![Mark::Link {
                    href: format!("https://polisen.se/{}", "x".repeat(8_200)),
                }],
            }],
        }];
        let pdf = render(Rendition {
            protocol: &p,
            hash: "abc",
            verification: None,
        });
        assert!(pdf.is_ok(), "{:?}", pdf.err());
    }

    #[test]
    fn a_protocol_beyond_the_bounds_is_refused_before_typesetting() {
        let mut p = testdata::small();
        p.agenda[1].content = vec![Block::Paragraph {
            content: vec![Inline::Text {
                text: "a ".repeat(limits::MAX_TEXT_BYTES / 2 + 1),
                marks: vec![],
            }],
        }];
        let started = std::time::Instant::now();
        let refused = render(Rendition {
            protocol: &p,
            hash: "abc",
            verification: None,
        });
        assert!(matches!(refused, Err(PdfError::Limit(_))), "{refused:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
