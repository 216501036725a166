//! Reads a Yjs v1 update's structure without integrating it: for every
//! block, its id range, its neighbours (left and right origin), its parent
//! (a root type by name, or the item that created the parent type), and
//! what kind of content it carries; and the delete set. Uses yrs' own
//! decoder, so the wire format is read exactly as yrs reads it when it
//! applies the update; the guard decides on that reading.
//!
//! This module only reads. What a client may send is the guard's decision
//! (`super::SectionIndex::check`), except for what no reading can make
//! sense of: a count or length beyond reason, a client id Yjs cannot read,
//! or bytes left over after the delete set, which are malformed. It runs
//! before yrs decodes a client's update, so yrs never sees those.

use std::sync::Arc;

use smallvec::SmallVec;

use yrs::{
    block::{
        BLOCK_GC_REF_NUMBER, BLOCK_ITEM_ANY_REF_NUMBER, BLOCK_ITEM_BINARY_REF_NUMBER,
        BLOCK_ITEM_DELETED_REF_NUMBER, BLOCK_ITEM_DOC_REF_NUMBER, BLOCK_ITEM_EMBED_REF_NUMBER,
        BLOCK_ITEM_FORMAT_REF_NUMBER, BLOCK_ITEM_JSON_REF_NUMBER, BLOCK_ITEM_STRING_REF_NUMBER,
        BLOCK_ITEM_TYPE_REF_NUMBER, BLOCK_SKIP_REF_NUMBER, HAS_ORIGIN, HAS_PARENT_SUB,
        HAS_RIGHT_ORIGIN, ItemContent,
    },
    encoding::read::Read,
    types::TypeRef,
    updates::decoder::{Decoder, DecoderV1},
};

/// An item id: (client, clock).
pub type Id = (u64, u32);

/// What a block carries. Yjs and yrs number content kinds 0-10 in the low
/// bits of a block's info byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// A tombstone: content that was deleted and collected; only a length.
    Deleted,
    Json,
    Binary,
    String,
    Embed,
    Format,
    Type(Shared),
    Any,
    Doc,
}

/// The shared type a `Content::Type` item creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    Array,
    Map,
    Text,
    /// An element of the protocol's editor schema (`document::ELEMENTS`).
    XmlElement,
    /// An element by any other name.
    OtherElement,
    XmlFragment,
    XmlHook,
    XmlText,
    /// Sub-documents, weak links and types yrs cannot name.
    Other,
}

/// Where a block says it lives, when it names no neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parent {
    /// A root type, by name.
    Root(Arc<str>),
    /// Inside the type created by this item.
    Item(Id),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A garbage-collected range: no content, no place.
    Gc,
    /// A hole in the client's clock range (only merged updates have them).
    Skip,
    Item {
        /// The item to the left when it was inserted.
        left: Option<Id>,
        /// The item to the right when it was inserted.
        right: Option<Id>,
        /// Only on the wire when the block names no neighbour.
        parent: Option<Parent>,
        /// Whether the parent is map-like (a key is given).
        keyed: bool,
        content: Content,
        /// The info byte sets bit 4 of the content kind, which yrs ignores
        /// and Yjs does not: the two would read different content.
        odd_kind: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub client: u64,
    pub clock: u32,
    pub len: u32,
    pub kind: Kind,
}

impl Block {
    pub fn end(&self) -> u32 {
        self.clock.saturating_add(self.len)
    }
}

impl Decoded {
    /// The item block of this update that holds `id`, with its start, end
    /// and neighbours (left and right origin).
    pub fn item_at(&self, (client, clock): Id) -> Option<(u32, u32, Option<Id>, Option<Id>)> {
        self.blocks.iter().find_map(|b| match &b.kind {
            Kind::Item { left, right, .. }
                if b.client == client && (b.clock..b.end()).contains(&clock) =>
            {
                Some((b.clock, b.end(), *left, *right))
            }
            _ => None,
        })
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Per client in wire order, each client's blocks in clock order (a
    /// keystroke is one block, kept inline).
    pub blocks: SmallVec<[Block; 1]>,
    /// (client, clock, len) ranges the update deletes.
    pub deletes: Vec<(u64, u32, u32)>,
    /// A client's blocks come in more than one run: yrs appends the later
    /// runs to the first, Yjs replaces it.
    pub repeated_client: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed update")]
pub struct Malformed;

/// Upper bound on counts read from the wire before allocating for them.
const MAX_COUNT: u32 = 1 << 24;

/// The clock length of an item's content, and its kind, read without
/// keeping it. Text, the common case, is measured in place; rarer kinds are
/// decoded by yrs.
fn content(d: &mut DecoderV1, info: u8) -> Result<(u32, Content), Malformed> {
    // yrs reads the kind from the low four bits (Yjs from five; see
    // `Kind::Item::odd_kind`).
    Ok(match info & 0b1111 {
        BLOCK_ITEM_DELETED_REF_NUMBER => (d.read_len().map_err(|_| Malformed)?, Content::Deleted),
        BLOCK_ITEM_STRING_REF_NUMBER => {
            // A string is a length-prefixed buffer; yrs has validated the
            // UTF-8 already when it decoded the same update.
            let bytes = d.read_buf().map_err(|_| Malformed)?;
            (utf16_len(bytes), Content::String)
        }
        BLOCK_ITEM_FORMAT_REF_NUMBER => {
            d.read_buf().map_err(|_| Malformed)?;
            d.read_buf().map_err(|_| Malformed)?;
            (1, Content::Format)
        }
        kind => {
            let decoded = ItemContent::decode(d, info).map_err(|_| Malformed)?;
            let content = match kind {
                BLOCK_ITEM_JSON_REF_NUMBER => Content::Json,
                BLOCK_ITEM_BINARY_REF_NUMBER => Content::Binary,
                BLOCK_ITEM_EMBED_REF_NUMBER => Content::Embed,
                BLOCK_ITEM_ANY_REF_NUMBER => Content::Any,
                BLOCK_ITEM_DOC_REF_NUMBER => Content::Doc,
                BLOCK_ITEM_TYPE_REF_NUMBER => match &decoded {
                    ItemContent::Type(branch) => Content::Type(match branch.type_ref() {
                        TypeRef::Array => Shared::Array,
                        TypeRef::Map => Shared::Map,
                        TypeRef::Text => Shared::Text,
                        TypeRef::XmlElement(name)
                            if crate::document::ELEMENTS.contains(&&**name) =>
                        {
                            Shared::XmlElement
                        }
                        TypeRef::XmlElement(_) => Shared::OtherElement,
                        TypeRef::XmlFragment => Shared::XmlFragment,
                        TypeRef::XmlHook => Shared::XmlHook,
                        TypeRef::XmlText => Shared::XmlText,
                        _ => Shared::Other,
                    }),
                    _ => return Err(Malformed),
                },
                _ => return Err(Malformed),
            };
            (decoded.len_utf16(), content)
        }
    })
}

/// Yjs measures text in UTF-16 code units: one per UTF-8 leading byte, two
/// for characters outside the BMP (4-byte sequences). Counted branch-free
/// over the bytes, which the compiler vectorises: a 20 KB paste costs about
/// as much as copying it.
fn utf16_len(utf8: &[u8]) -> u32 {
    utf8.iter()
        .map(|&b| u32::from(b & 0xC0 != 0x80) + u32::from(b >= 0xF0))
        .sum()
}

/// Largest client id: Yjs reads ids as JavaScript numbers and refuses
/// more than 53 bits; yrs keeps only 53 bits (and asserts it in debug
/// builds).
pub const MAX_CLIENT: u64 = (1 << 53) - 1;

/// A client id as v1 writes it (a variable-length integer), checked before
/// yrs ever reads it.
fn client(d: &mut DecoderV1) -> Result<u64, Malformed> {
    let client: u64 = d.read_var().map_err(|_| Malformed)?;
    if client > MAX_CLIENT {
        return Err(Malformed);
    }
    Ok(client)
}

/// An id as v1 writes it (left, right and parent ids alike): client, then
/// clock.
fn id(d: &mut DecoderV1) -> Result<Id, Malformed> {
    let client = client(d)?;
    let clock: u32 = d.read_var().map_err(|_| Malformed)?;
    Ok((client, clock))
}

/// Decodes `update`. Bytes after the delete set are an error: a decoder
/// that ignores what it does not understand is where two readers of the
/// same bytes start to disagree (a v2 update read as v1 looks empty).
pub fn decode(update: &[u8]) -> Result<Decoded, Malformed> {
    let mut d = DecoderV1::from(update);
    let mut out = Decoded::default();
    let clients: u32 = d.read_var().map_err(|_| Malformed)?;
    if clients > MAX_COUNT {
        return Err(Malformed);
    }
    for _ in 0..clients {
        let count: u32 = d.read_var().map_err(|_| Malformed)?;
        let client = client(&mut d)?;
        let mut clock: u32 = d.read_var().map_err(|_| Malformed)?;
        if count > MAX_COUNT {
            return Err(Malformed);
        }
        if out.blocks.iter().any(|b| b.client == client) {
            out.repeated_client = true;
        }
        for _ in 0..count {
            let info = d.read_info().map_err(|_| Malformed)?;
            let (len, kind) = match info {
                BLOCK_SKIP_REF_NUMBER => (d.read_var().map_err(|_| Malformed)?, Kind::Skip),
                BLOCK_GC_REF_NUMBER => (d.read_len().map_err(|_| Malformed)?, Kind::Gc),
                info => {
                    let left = (info & HAS_ORIGIN != 0).then(|| id(&mut d)).transpose()?;
                    let right = (info & HAS_RIGHT_ORIGIN != 0)
                        .then(|| id(&mut d))
                        .transpose()?;
                    let named = left.is_none() && right.is_none();
                    let parent = if !named {
                        None
                    } else if d.read_parent_info().map_err(|_| Malformed)? {
                        let name: Arc<str> = d.read_string().map_err(|_| Malformed)?.into();
                        Some(Parent::Root(name))
                    } else {
                        Some(Parent::Item(id(&mut d)?))
                    };
                    let keyed = named && info & HAS_PARENT_SUB != 0;
                    if keyed {
                        d.read_string().map_err(|_| Malformed)?;
                    }
                    let (len, content) = content(&mut d, info)?;
                    let kind = Kind::Item {
                        left,
                        right,
                        parent,
                        keyed,
                        content,
                        odd_kind: info & 0b1_0000 != 0,
                    };
                    (len, kind)
                }
            };
            if len == 0 {
                return Err(Malformed);
            }
            out.blocks.push(Block {
                client,
                clock,
                len,
                kind,
            });
            clock = clock.checked_add(len).ok_or(Malformed)?;
        }
    }
    let ds_clients: u32 = d.read_var().map_err(|_| Malformed)?;
    if ds_clients > MAX_COUNT {
        return Err(Malformed);
    }
    for _ in 0..ds_clients {
        d.reset_ds_cur_val();
        let client = client(&mut d)?;
        let ranges: u32 = d.read_var().map_err(|_| Malformed)?;
        if ranges > MAX_COUNT {
            return Err(Malformed);
        }
        for _ in 0..ranges {
            let clock = d.read_ds_clock().map_err(|_| Malformed)?;
            let len = d.read_ds_len().map_err(|_| Malformed)?;
            clock.checked_add(len).ok_or(Malformed)?;
            if len > 0 {
                out.deletes.push((client, clock, len));
            }
        }
    }
    if d.read_u8().is_ok() {
        return Err(Malformed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Doc, ReadTxn, StateVector, Text, Transact, WriteTxn, XmlElementPrelim, XmlFragment};

    #[test]
    fn utf16_length_matches_the_standard_library() {
        for s in ["", "abc", "åäö", "€", "𝄞 musik", "a𝄞b€c"] {
            let expected: usize = s.chars().map(char::len_utf16).sum();
            assert_eq!(super::utf16_len(s.as_bytes()) as usize, expected, "{s}");
        }
    }

    #[test]
    fn blocks_carry_their_neighbours_parent_and_content() {
        let doc = Doc::with_client_id(5);
        let update = {
            let mut txn = doc.transact_mut();
            let f = txn.get_or_insert_xml_fragment("section:polis");
            let p = f.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
            p.push_back(&mut txn, yrs::XmlTextPrelim::new("hej"));
            txn.encode_update_v1()
        };
        let decoded = decode(&update).unwrap();
        assert_eq!(decoded.blocks.len(), 3);
        assert!(matches!(
            &decoded.blocks[0].kind,
            Kind::Item { parent: Some(Parent::Root(name)), content: Content::Type(Shared::XmlElement), .. }
                if &**name == "section:polis"
        ));
        assert!(matches!(
            decoded.blocks[1].kind,
            Kind::Item {
                parent: Some(Parent::Item((5, 0))),
                content: Content::Type(Shared::XmlText),
                ..
            }
        ));
        assert!(matches!(
            decoded.blocks[2].kind,
            Kind::Item {
                parent: Some(Parent::Item((5, 1))),
                content: Content::String,
                ..
            }
        ));
        let more = {
            let text = doc.get_or_insert_text("t");
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, "ab");
            text.insert(&mut txn, 1, "x");
            txn.encode_update_v1()
        };
        let decoded = decode(&more).unwrap();
        assert!(decoded.blocks.iter().any(|b| matches!(
            b.kind,
            Kind::Item {
                left: Some(_),
                right: Some(_),
                parent: None,
                ..
            }
        )));
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let doc = Doc::with_client_id(5);
        doc.get_or_insert_text("t")
            .push(&mut doc.transact_mut(), "x");
        let mut update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert!(decode(&update).is_ok());
        update.push(0);
        assert_eq!(decode(&update), Err(Malformed));
        // A v2 update read as v1.
        let v2 = doc
            .transact()
            .encode_state_as_update_v2(&StateVector::default());
        assert_eq!(decode(&v2), Err(Malformed));
    }
}
