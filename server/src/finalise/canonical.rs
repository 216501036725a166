//! From the stored document and meeting data to the canonical protocol
//! (`protokoll_render::Protocol`): the one form that is hashed.
//!
//! Section bodies are read from each `section:{id}` XmlFragment as a closed
//! set of ProseMirror nodes. Normalisation, so that equal-looking text
//! hashes equally: adjacent text runs with the same marks are merged, empty
//! runs and empty paragraphs are dropped, marks are listed in a fixed order,
//! and only http, https and mailto links are kept (other links keep their
//! text), as their target alone (a link's `target`, `rel` or `class` never
//! reaches a protocol). Carriage returns are line feeds: CRLF and a lone
//! CR become LF in every string, so that no rendering reads a line break
//! the others do not. Unknown elements are replaced by their children, so
//! no text is lost to an editor extension the renderer does not know.
//!
//! Protocols locked before these rules were in force keep the canonical
//! form they were hashed with (`protokoll/1` names the shape, which is
//! unchanged); the renderers treat a CR in them as a line break too.
//!
//! The document is read to a bounded depth ([`MAX_READ_DEPTH`]): a section
//! of elements nested deeper is refused at the lock, not followed down
//! until the stack runs out.

use std::sync::Arc;

use protokoll_render::{
    limits::{ItemRef, MAX_DEPTH, Problem, ProblemKind},
    model::{Block, FORMAT, Inline, Item, ListItem, Mark, MeetingInfo, Person, Protocol},
};
use yrs::{
    Any, Doc, Out, ReadTxn, Transact, Update, Xml, XmlElementRef, XmlFragment, XmlOut,
    types::{Attrs, text::YChange},
    updates::decoder::Decode,
};

use crate::{
    document::section_root,
    store::{LockSnapshot, StoredDocument},
};

/// Rebuilds a document from what the store holds. A damaged row is
/// skipped (and logged), as when a room loads.
pub fn build_document(stored: StoredDocument) -> Doc {
    let doc = Doc::new();
    let snapshot = stored.snapshot.map(|s| (s.upto, s.state));
    for (seq, data) in snapshot.into_iter().chain(stored.updates) {
        match Update::decode_v1(&data) {
            Ok(update) => {
                if let Err(e) = doc.transact_mut().apply_update(update) {
                    tracing::error!(seq, error = %e, "stored update does not apply");
                }
            }
            Err(e) => tracing::error!(seq, error = %e, "stored update does not decode"),
        }
    }
    doc
}

fn role_rank(role: &str) -> u8 {
    match role {
        "chair" => 0,
        "secretary" => 1,
        "justerare" => 2,
        _ => 3,
    }
}

/// How deeply elements are followed into a section. Far deeper than any
/// list a protocol may hold ([`MAX_DEPTH`] levels, two elements each);
/// deeper nesting is refused at the lock.
pub const MAX_READ_DEPTH: usize = 128;

/// CRLF and a lone CR as LF.
pub fn line_feeds(s: &str) -> String {
    if s.contains('\r') {
        s.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        s.to_owned()
    }
}

/// The canonical protocol of a meeting at its lock, or why a section
/// cannot be read into one.
pub fn protocol(
    meeting_id: &str,
    snapshot: &LockSnapshot,
    doc: &Doc,
    locked_at: &str,
    locked_by: &str,
) -> Result<Protocol, Problem> {
    let mut participants: Vec<Person> = snapshot
        .participants
        .iter()
        .map(|(id, name, role, agency)| Person {
            id: id.to_string(),
            name: line_feeds(name),
            role: role.clone(),
            agency: agency.as_deref().map(line_feeds),
        })
        .collect();
    participants.sort_by(|a, b| {
        (role_rank(&a.role), &a.name, &a.id).cmp(&(role_rank(&b.role), &b.name, &b.id))
    });
    let of_role = |roles: &[&str]| -> Vec<Person> {
        participants
            .iter()
            .filter(|p| roles.contains(&p.role.as_str()))
            .cloned()
            .collect()
    };
    let txn = doc.transact();
    let mut agenda = Vec::with_capacity(snapshot.sections.len());
    for (id, number, title, owner) in &snapshot.sections {
        let mut item = Item {
            id: id.clone(),
            number: line_feeds(number),
            title: line_feeds(title),
            owner: line_feeds(owner),
            content: Vec::new(),
        };
        if let Some(f) = txn.get_xml_fragment(section_root(id).as_str()) {
            let mut reader = Reader {
                txn: &txn,
                too_deep: false,
            };
            item.content = reader.blocks(f.children(&txn), 0);
            if reader.too_deep {
                return Err(Problem {
                    item: Some(ItemRef::of(&item)),
                    kind: ProblemKind::NestedTooDeep {
                        depth: MAX_READ_DEPTH / 2,
                        limit: MAX_DEPTH,
                    },
                });
            }
        }
        agenda.push(item);
    }
    Ok(Protocol {
        format: FORMAT.to_owned(),
        meeting: MeetingInfo {
            id: meeting_id.to_owned(),
            title: line_feeds(&snapshot.title),
            body: line_feeds(&snapshot.body),
            date: snapshot.date.clone(),
            time: snapshot.time.clone(),
            place: line_feeds(&snapshot.place),
        },
        secretaries: of_role(&["secretary"]),
        verifiers: of_role(&["chair", "justerare"]),
        participants,
        agenda,
        locked_at: locked_at.to_owned(),
        locked_by: line_feeds(locked_by),
        version: snapshot.next_version as u32,
    })
}

/// Reads one section, minding how deep it goes.
struct Reader<'a, T> {
    txn: &'a T,
    /// Set when elements went deeper than [`MAX_READ_DEPTH`]; what lies
    /// below was not read.
    too_deep: bool,
}

impl<T: ReadTxn> Reader<'_, T> {
    fn deeper(&mut self, depth: usize) -> bool {
        if depth >= MAX_READ_DEPTH {
            self.too_deep = true;
            false
        } else {
            true
        }
    }

    fn blocks(&mut self, children: impl Iterator<Item = XmlOut>, depth: usize) -> Vec<Block> {
        let txn = self.txn;
        let mut out = Vec::new();
        if !self.deeper(depth) {
            return out;
        }
        for child in children {
            match child {
                XmlOut::Element(e) => match e.tag().as_ref() {
                    "paragraph" => {
                        let content = self.inlines(&e, depth + 1);
                        if !content.is_empty() {
                            out.push(Block::Paragraph { content });
                        }
                    }
                    "heading" => {
                        let content = self.inlines(&e, depth + 1);
                        if !content.is_empty() {
                            let level = number_attribute(txn, &e, "level").unwrap_or(1).clamp(1, 6);
                            out.push(Block::Heading {
                                level: level as u8,
                                content,
                            });
                        }
                    }
                    "bulletList" | "orderedList" => {
                        let items: Vec<ListItem> = e
                            .children(txn)
                            .map(|item| ListItem {
                                content: match item {
                                    XmlOut::Element(li) if li.tag().as_ref() == "listItem" => {
                                        self.blocks(li.children(txn), depth + 2)
                                    }
                                    other => self.blocks(std::iter::once(other), depth + 1),
                                },
                            })
                            .filter(|item| !item.content.is_empty())
                            .collect();
                        if items.is_empty() {
                            continue;
                        }
                        if e.tag().as_ref() == "bulletList" {
                            out.push(Block::BulletList { content: items });
                        } else {
                            let start = number_attribute(txn, &e, "start").unwrap_or(1).max(0);
                            out.push(Block::OrderedList {
                                start: start as u32,
                                content: items,
                            });
                        }
                    }
                    // Anything else (blockquote, listItem out of place, an
                    // editor extension): its children, so the text survives.
                    _ => {
                        let children = self.blocks(e.children(txn), depth + 1);
                        out.extend(children)
                    }
                },
                XmlOut::Text(text) => {
                    let mut content = Vec::new();
                    push_text(txn, &text, &mut content);
                    if !content.is_empty() {
                        out.push(Block::Paragraph { content });
                    }
                }
                XmlOut::Fragment(f) => {
                    let children = self.blocks(f.children(txn), depth + 1);
                    out.extend(children)
                }
            }
        }
        out
    }

    fn inlines(&mut self, element: &XmlElementRef, depth: usize) -> Vec<Inline> {
        let mut out = Vec::new();
        self.push_inlines(element.children(self.txn), &mut out, depth);
        out
    }

    fn push_inlines(
        &mut self,
        children: impl Iterator<Item = XmlOut>,
        out: &mut Vec<Inline>,
        depth: usize,
    ) {
        let txn = self.txn;
        if !self.deeper(depth) {
            return;
        }
        for child in children {
            match child {
                XmlOut::Text(text) => push_text(txn, &text, out),
                XmlOut::Element(e) if e.tag().as_ref() == "hardBreak" => {
                    out.push(Inline::HardBreak)
                }
                XmlOut::Element(e) => self.push_inlines(e.children(txn), out, depth + 1),
                XmlOut::Fragment(f) => self.push_inlines(f.children(txn), out, depth + 1),
            }
        }
    }
}

fn number_attribute<T: ReadTxn>(txn: &T, e: &XmlElementRef, name: &str) -> Option<i64> {
    match e.get_attribute(txn, name)? {
        Out::Any(Any::Number(yrs::Number::Int(n))) => Some(n),
        Out::Any(Any::Number(yrs::Number::Float(n))) if n.is_finite() => Some(n as i64),
        Out::Any(Any::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

fn push_text<T: ReadTxn>(txn: &T, text: &yrs::XmlTextRef, out: &mut Vec<Inline>) {
    use yrs::Text;
    for chunk in text.diff(txn, YChange::identity) {
        let Out::Any(Any::String(s)) = chunk.insert else {
            // Embeds have no text form in a protocol.
            continue;
        };
        if s.is_empty() {
            continue;
        }
        let s = line_feeds(&s);
        let marks = marks(chunk.attributes.as_deref());
        if let Some(Inline::Text {
            text: last,
            marks: last_marks,
        }) = out.last_mut()
            && *last_marks == marks
        {
            last.push_str(&s);
            continue;
        }
        out.push(Inline::Text {
            text: s.to_string(),
            marks,
        });
    }
}

fn present(value: &Any) -> bool {
    !matches!(value, Any::Null | Any::Undefined | Any::Bool(false))
}

fn marks(attrs: Option<&Attrs>) -> Vec<Mark> {
    let Some(attrs) = attrs else {
        return Vec::new();
    };
    let mut marks = Vec::new();
    for (name, value) in attrs {
        if !present(value) {
            continue;
        }
        match name.as_ref() {
            "bold" | "strong" => marks.push(Mark::Bold),
            "italic" | "em" => marks.push(Mark::Italic),
            "link" => {
                if let Some(href) = link_target(value) {
                    marks.push(Mark::Link { href });
                }
            }
            _ => {}
        }
    }
    marks.sort();
    marks.dedup();
    marks
}

/// A link's target, if it is one a protocol may carry.
fn link_target(value: &Any) -> Option<String> {
    let href: Arc<str> = match value {
        Any::Map(map) => match map.get("href") {
            Some(Any::String(s)) => s.clone(),
            _ => return None,
        },
        Any::String(s) => s.clone(),
        _ => return None,
    };
    let href = href.trim();
    let lower = href.to_ascii_lowercase();
    let allowed = ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme));
    (allowed && !href.chars().any(|c| c.is_control() || c.is_whitespace())).then(|| href.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Text, TransactionMut, WriteTxn, XmlElementPrelim, XmlTextPrelim};

    fn read(build: impl FnOnce(&mut TransactionMut, yrs::XmlFragmentRef)) -> (Vec<Block>, bool) {
        let doc = Doc::new();
        {
            let mut txn = doc.transact_mut();
            let f = txn.get_or_insert_xml_fragment("section:s");
            build(&mut txn, f);
        }
        let txn = doc.transact();
        let f = txn.get_xml_fragment("section:s").unwrap();
        let mut reader = Reader {
            txn: &txn,
            too_deep: false,
        };
        let blocks = reader.blocks(f.children(&txn), 0);
        (blocks, reader.too_deep)
    }

    fn section(build: impl FnOnce(&mut TransactionMut, yrs::XmlFragmentRef)) -> Vec<Block> {
        let (blocks, too_deep) = read(build);
        assert!(!too_deep);
        blocks
    }

    #[test]
    fn carriage_returns_are_line_feeds() {
        // Issue 24, finding 6: a CR in section text started a block in the
        // Markdown export.
        let content = section(|txn, f| {
            let p = f.push_back(txn, XmlElementPrelim::empty("paragraph"));
            p.push_back(
                txn,
                XmlTextPrelim::new("Rapport\r# FORGED § 99\r\n1. X\r---"),
            );
        });
        assert_eq!(content[0].plain_text(), "Rapport\n# FORGED § 99\n1. X\n---");
        assert_eq!(line_feeds("a\r\n\rb"), "a\n\nb");
    }

    #[test]
    fn a_link_keeps_only_its_target() {
        // Issue 24, finding 7: target, rel and class written by an agency.
        let content = section(|txn, f| {
            let p = f.push_back(txn, XmlElementPrelim::empty("paragraph"));
            let t = p.push_back(txn, XmlTextPrelim::new("karta"));
            let link = Attrs::from([(
                Arc::from("link"),
                Any::from(std::collections::HashMap::from([
                    ("href".to_owned(), Any::from("https://polisen.se/")),
                    ("target".to_owned(), Any::from("_blank")),
                    ("rel".to_owned(), Any::from("opener")),
                    ("class".to_owned(), Any::from("x")),
                ])),
            )]);
            t.format(txn, 0, 5, link);
        });
        assert_eq!(
            serde_json::to_string(&content).unwrap(),
            r#"[{"type":"paragraph","content":[{"type":"text","text":"karta","marks":[{"type":"link","href":"https://polisen.se/"}]}]}]"#
        );
    }

    #[test]
    fn elements_nested_without_end_are_refused_not_followed() {
        let (_, too_deep) = read(|txn, f| {
            let mut parent = f.push_back(txn, XmlElementPrelim::empty("blockquote"));
            for _ in 0..10_000 {
                parent = parent.push_back(txn, XmlElementPrelim::empty("blockquote"));
            }
            parent.push_back(txn, XmlTextPrelim::new("botten"));
        });
        assert!(too_deep);
        let (content, too_deep) = read(|txn, f| {
            let mut parent = f.push_back(txn, XmlElementPrelim::empty("bulletList"));
            for _ in 0..MAX_DEPTH {
                let item = parent.push_back(txn, XmlElementPrelim::empty("listItem"));
                parent = item.push_back(txn, XmlElementPrelim::empty("bulletList"));
            }
            let item = parent.push_back(txn, XmlElementPrelim::empty("listItem"));
            let p = item.push_back(txn, XmlElementPrelim::empty("paragraph"));
            p.push_back(txn, XmlTextPrelim::new("botten"));
        });
        assert!(!too_deep, "the deepest lists a protocol may hold are read");
        assert_eq!(content[0].plain_text(), "botten");
    }

    #[test]
    fn reads_paragraphs_marks_and_lists() {
        let content = section(|txn, f| {
            let p = f.push_back(txn, XmlElementPrelim::empty("paragraph"));
            let t = p.push_back(txn, XmlTextPrelim::new("Inbrott ökar"));
            let bold = Attrs::from([(Arc::from("bold"), Any::Map(Default::default()))]);
            // Offsets are in UTF-8 bytes (yrs' default).
            t.format(txn, 8, "ökar".len() as u32, bold);
            let link = Attrs::from([(
                Arc::from("link"),
                Any::from(std::collections::HashMap::from([(
                    "href".to_owned(),
                    Any::from("javascript:alert(1)"),
                )])),
            )]);
            t.format(txn, 0, 7, link);
            f.push_back(txn, XmlElementPrelim::empty("paragraph"));
            let list = f.push_back(txn, XmlElementPrelim::empty("bulletList"));
            let li = list.push_back(txn, XmlElementPrelim::empty("listItem"));
            let lp = li.push_back(txn, XmlElementPrelim::empty("paragraph"));
            lp.push_back(txn, XmlTextPrelim::new("Västertorp"));
        });
        assert_eq!(
            content,
            vec![
                Block::Paragraph {
                    content: vec![
                        Inline::Text {
                            text: "Inbrott ".into(),
                            marks: vec![]
                        },
                        Inline::Text {
                            text: "ökar".into(),
                            marks: vec![Mark::Bold]
                        },
                    ]
                },
                Block::BulletList {
                    content: vec![ListItem {
                        content: vec![Block::Paragraph {
                            content: vec![Inline::Text {
                                text: "Västertorp".into(),
                                marks: vec![]
                            }]
                        }]
                    }]
                },
            ],
            "the javascript: link is dropped, its text kept; the empty paragraph is dropped"
        );
    }

    #[test]
    fn unknown_elements_keep_their_text() {
        let content = section(|txn, f| {
            let quote = f.push_back(txn, XmlElementPrelim::empty("blockquote"));
            let p = quote.push_back(txn, XmlElementPrelim::empty("paragraph"));
            p.push_back(txn, XmlTextPrelim::new("citat"));
        });
        assert_eq!(content.len(), 1);
        assert_eq!(content[0].plain_text(), "citat");
    }

    #[test]
    fn only_web_and_mail_links_are_kept() {
        let link = |s: &str| link_target(&Any::from(s));
        assert_eq!(
            link("https://polisen.se/"),
            Some("https://polisen.se/".into())
        );
        assert_eq!(link("mailto:a@b.se"), Some("mailto:a@b.se".into()));
        assert_eq!(link("javascript:alert(1)"), None);
        assert_eq!(link("data:text/html,x"), None);
        assert_eq!(link("https://a.se/\nx"), None);
    }
}
