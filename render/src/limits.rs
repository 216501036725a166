//! What a protocol may ask of the renderers, above all of the typesetter.
//!
//! Typst's time and memory grow with the text it lays out (a protocol of
//! 7 MB of text took 8 s and about 1 GiB per PDF), and it refuses some
//! input outright (a link longer than 8,000 bytes, a PDF/A text array
//! longer than 8,191 glyphs, functions nested deeper than it allows). The
//! lock checks a protocol against these bounds before it is stored, so
//! that every locked protocol can become its archival PDF, and says which
//! section is at fault; the PDF renderer checks them again for protocols
//! locked before the bounds existed, and refuses clearly rather than run
//! out of memory.
//!
//! The bounds are far above any real protocol (the demo council's text is
//! 6 KB in about 150 nodes; a long protocol 50 KB in 2,000) and keep one
//! PDF within about 300 MB and 3 s of the typesetter (measured on the
//! 2-core development machine: 1 MiB of text in 1 KiB paragraphs 230 MB,
//! 2.4 s; 20,000 nodes of 100 bytes each 290 MB, 2.4 s; for comparison,
//! 2 MiB of text took 490 MB, and 40,000 list items 680 MB).

use serde::Serialize;

use crate::model::{Block, Inline, Item, Mark, Protocol};

/// Longest link target, in bytes. Typst refuses more than 8,000; browsers
/// and servers commonly stop at 2,048, so a longer link would not work for
/// the reader anyway.
pub const MAX_LINK_BYTES: usize = 2_048;

/// Most text one protocol may hold, in bytes of UTF-8 (section text,
/// titles and names together). About 500 printed pages.
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;

/// Most nodes (blocks, list items, text runs, line breaks) one protocol
/// may hold. Many small nodes cost the typesetter more than the same text
/// in a few.
pub const MAX_NODES: usize = 20_000;

/// Deepest nesting of lists inside lists. Typst limits how deeply its
/// functions call each other, and every level is a few calls.
pub const MAX_DEPTH: usize = 12;

/// Longest run of characters without a space or other break opportunity
/// that the PDF lays out as it is. Typst does not break inside a word, so
/// such a run overflows its line, and a line of more than 8,191 glyphs is
/// not valid PDF/A. The PDF renderer lets longer runs break anywhere.
pub const MAX_UNBROKEN_CHARS: usize = 80;

/// The agenda item a problem is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemRef {
    pub id: String,
    /// The § number.
    pub number: String,
    pub title: String,
}

impl ItemRef {
    pub fn of(item: &Item) -> Self {
        Self {
            id: item.id.clone(),
            number: item.number.clone(),
            title: item.title.clone(),
        }
    }
}

/// Why a protocol cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProblemKind {
    /// A link target is longer than [`MAX_LINK_BYTES`].
    LinkTooLong { bytes: usize, limit: usize },
    /// The protocol holds more text than [`MAX_TEXT_BYTES`]; the item
    /// named is the one with the most.
    TextTooLarge {
        bytes: usize,
        limit: usize,
        item_bytes: usize,
    },
    /// More nodes than [`MAX_NODES`]; the item named has the most.
    TooManyNodes {
        nodes: usize,
        limit: usize,
        item_nodes: usize,
    },
    /// Lists nested deeper than [`MAX_DEPTH`].
    NestedTooDeep { depth: usize, limit: usize },
    /// The typesetter refused it, for a reason not foreseen here.
    Typeset { message: String },
}

/// A reason a protocol cannot become a PDF, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The agenda item at fault; none when it is the protocol as a whole.
    pub item: Option<ItemRef>,
    #[serde(flatten)]
    pub kind: ProblemKind,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(item) = &self.item {
            write!(f, "§ {} {}: ", item.number, item.title)?;
        }
        match &self.kind {
            ProblemKind::LinkTooLong { bytes, limit } => write!(
                f,
                "a link is {bytes} characters long, at most {limit} can be archived: \
                 shorten the link or remove it"
            ),
            ProblemKind::TextTooLarge {
                bytes,
                limit,
                item_bytes,
            } => write!(
                f,
                "the protocol holds {bytes} bytes of text ({item_bytes} in this section), \
                 at most {limit} can be archived: shorten the text"
            ),
            ProblemKind::TooManyNodes {
                nodes,
                limit,
                item_nodes,
            } => write!(
                f,
                "the protocol has {nodes} paragraphs, list items and formatted pieces of text \
                 ({item_nodes} in this section), at most {limit} can be archived: \
                 simplify the formatting"
            ),
            ProblemKind::NestedTooDeep { depth, limit } => write!(
                f,
                "lists are nested {depth} levels deep, at most {limit} can be archived: \
                 flatten the lists"
            ),
            ProblemKind::Typeset { message } => {
                write!(f, "the PDF typesetter refused it ({message})")
            }
        }
    }
}

impl std::error::Error for Problem {}

/// What one item or the header holds, counted.
#[derive(Default)]
struct Tally {
    bytes: usize,
    nodes: usize,
    depth: usize,
    longest_link: usize,
}

impl Tally {
    fn blocks(&mut self, blocks: &[Block], depth: usize) {
        self.depth = self.depth.max(depth);
        for block in blocks {
            self.nodes += 1;
            match block {
                Block::Paragraph { content } | Block::Heading { content, .. } => {
                    self.inlines(content)
                }
                Block::BulletList { content } | Block::OrderedList { content, .. } => {
                    for item in content {
                        self.nodes += 1;
                        self.blocks(&item.content, depth + 1);
                    }
                }
            }
        }
    }

    fn inlines(&mut self, inlines: &[Inline]) {
        for inline in inlines {
            self.nodes += 1;
            if let Inline::Text { text, marks } = inline {
                self.bytes += text.len();
                for mark in marks {
                    if let Mark::Link { href } = mark {
                        self.longest_link = self.longest_link.max(href.len());
                    }
                }
            }
        }
    }
}

fn header_bytes(p: &Protocol) -> usize {
    let m = &p.meeting;
    let people: usize = p
        .participants
        .iter()
        .chain(&p.secretaries)
        .chain(&p.verifiers)
        .map(|person| person.name.len() + person.agency.as_deref().map_or(0, str::len))
        .sum();
    m.title.len() + m.body.len() + m.place.len() + people + p.locked_by.len()
}

/// Checks everything: the bounds of size and nesting, and the links. The
/// lock uses this.
pub fn check(p: &Protocol) -> Result<(), Problem> {
    check_inner(p, true)
}

/// Checks size and nesting only. The PDF renderer uses this for protocols
/// it is handed: a link too long for it is shown as text instead.
pub fn check_size(p: &Protocol) -> Result<(), Problem> {
    check_inner(p, false)
}

fn check_inner(p: &Protocol, links: bool) -> Result<(), Problem> {
    let mut total_bytes = header_bytes(p);
    let mut total_nodes = p.participants.len();
    let mut biggest: Option<(&Item, Tally)> = None;
    let mut densest: Option<(&Item, usize)> = None;
    for item in &p.agenda {
        let mut tally = Tally {
            bytes: item.number.len() + item.title.len() + item.owner.len(),
            ..Tally::default()
        };
        tally.blocks(&item.content, 0);
        if tally.depth > MAX_DEPTH {
            return Err(Problem {
                item: Some(ItemRef::of(item)),
                kind: ProblemKind::NestedTooDeep {
                    depth: tally.depth,
                    limit: MAX_DEPTH,
                },
            });
        }
        if links && tally.longest_link > MAX_LINK_BYTES {
            return Err(Problem {
                item: Some(ItemRef::of(item)),
                kind: ProblemKind::LinkTooLong {
                    bytes: tally.longest_link,
                    limit: MAX_LINK_BYTES,
                },
            });
        }
        total_bytes += tally.bytes;
        total_nodes += tally.nodes + 1;
        if densest.is_none_or(|(_, n)| tally.nodes > n) {
            densest = Some((item, tally.nodes));
        }
        if biggest.as_ref().is_none_or(|(_, b)| tally.bytes > b.bytes) {
            biggest = Some((item, tally));
        }
    }
    if total_bytes > MAX_TEXT_BYTES {
        return Err(Problem {
            item: biggest.as_ref().map(|(item, _)| ItemRef::of(item)),
            kind: ProblemKind::TextTooLarge {
                bytes: total_bytes,
                limit: MAX_TEXT_BYTES,
                item_bytes: biggest.as_ref().map_or(0, |(_, t)| t.bytes),
            },
        });
    }
    if total_nodes > MAX_NODES {
        return Err(Problem {
            item: densest.map(|(item, _)| ItemRef::of(item)),
            kind: ProblemKind::TooManyNodes {
                nodes: total_nodes,
                limit: MAX_NODES,
                item_nodes: densest.map_or(0, |(_, n)| n),
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ListItem;
    use crate::testdata;

    fn with_content(content: Vec<Block>) -> Protocol {
        let mut p = testdata::small();
        p.agenda[1].content = content;
        p
    }

    fn text(s: impl Into<String>, marks: Vec<Mark>) -> Inline {
        Inline::Text {
            text: s.into(),
            marks,
        }
    }

    #[test]
    fn a_real_protocol_is_within_every_bound() {
        assert_eq!(check(&testdata::small()), Ok(()));
        assert_eq!(check(&testdata::hostile()), Ok(()));
    }

    #[test]
    fn a_long_link_is_named_with_its_section() {
        let href = format!("https://polisen.se/{}", "x".repeat(8_200));
        let p = with_content(vec![Block::Paragraph {
            content: vec![text("karta", vec![Mark::Link { href: href.clone() }])],
        }]);
        let problem = check(&p).unwrap_err();
        assert_eq!(problem.item.as_ref().unwrap().number, "2.1");
        assert_eq!(
            problem.kind,
            ProblemKind::LinkTooLong {
                bytes: href.len(),
                limit: MAX_LINK_BYTES
            }
        );
        assert!(problem.to_string().starts_with("§ 2.1 Polis: a link is"));
        assert_eq!(check_size(&p), Ok(()), "the PDF shows it as text");
    }

    #[test]
    fn too_much_text_names_the_biggest_section() {
        let p = with_content(vec![Block::Paragraph {
            content: vec![text("a ".repeat(MAX_TEXT_BYTES / 2 + 1), vec![])],
        }]);
        let problem = check_size(&p).unwrap_err();
        assert_eq!(problem.item.unwrap().id, "polis");
        assert!(matches!(problem.kind, ProblemKind::TextTooLarge { .. }));
    }

    #[test]
    fn too_many_nodes_and_too_deep_lists_are_refused() {
        let p = with_content(
            (0..MAX_NODES)
                .map(|_| Block::Paragraph {
                    content: vec![text("x", vec![])],
                })
                .collect(),
        );
        assert!(matches!(
            check(&p).unwrap_err().kind,
            ProblemKind::TooManyNodes { .. }
        ));
        let mut deep = Block::Paragraph {
            content: vec![text("botten", vec![])],
        };
        for _ in 0..=MAX_DEPTH {
            deep = Block::BulletList {
                content: vec![ListItem {
                    content: vec![deep],
                }],
            };
        }
        assert_eq!(
            check(&with_content(vec![deep])).unwrap_err().kind,
            ProblemKind::NestedTooDeep {
                depth: MAX_DEPTH + 1,
                limit: MAX_DEPTH
            }
        );
    }
}
