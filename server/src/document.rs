//! The shape of a meeting document (see `docs/document-schema.md`): which
//! root types exist, what they are called, and how the server writes the
//! parts it owns (the agenda).

use yrs::{
    Array, ArrayRef, Map, MapPrelim, TransactionMut, WriteTxn, XmlElementPrelim, XmlFragment,
    XmlTextPrelim,
};

/// Root `Y.Array` of agenda items, each a `Y.Map`. Written by the server
/// only, mirroring the agenda kept in the database.
pub const AGENDA: &str = "agenda";

/// Root `Y.Map` in which the server announces the protocol's state
/// (`state`, `hash`, `lockedAt`) to connected clients. Written by the
/// server only, as the last append before a lock and the first after a
/// rejection or reopening.
pub const PROTOCOL: &str = "protocol";

/// Prefix of the root names of section fragments.
pub const SECTION_PREFIX: &str = "section:";

/// Root name of a section's `Y.XmlFragment`.
pub fn section_root(section_id: &str) -> String {
    format!("{SECTION_PREFIX}{section_id}")
}

/// The elements a section may contain: the browser app's editor schema
/// (TipTap's names), and a few of its common relatives. The section guard
/// refuses others.
pub const ELEMENTS: &[&str] = &[
    "paragraph",
    "heading",
    "bulletList",
    "orderedList",
    "listItem",
    "hardBreak",
    "blockquote",
    "horizontalRule",
];

/// One agenda item as the document shows it.
pub struct AgendaEntry {
    pub id: String,
    pub number: String,
    pub title: String,
    /// `agency:{uuid}`, `user:{uuid}` or `secretary`.
    pub owner: String,
    /// The owner's name, for display.
    pub owner_name: String,
}

/// Replaces the document's agenda with `entries`.
pub fn write_agenda(txn: &mut TransactionMut, entries: &[AgendaEntry]) {
    let agenda: ArrayRef = txn.get_or_insert_array(AGENDA);
    let len = agenda.len(txn);
    if len > 0 {
        agenda.remove_range(txn, 0, len);
    }
    for e in entries {
        agenda.push_back(
            txn,
            MapPrelim::from([
                ("id", yrs::In::from(e.id.as_str())),
                ("number", yrs::In::from(e.number.as_str())),
                ("title", yrs::In::from(e.title.as_str())),
                ("owner", yrs::In::from(e.owner.as_str())),
                ("ownerName", yrs::In::from(e.owner_name.as_str())),
            ]),
        );
    }
}

/// Appends paragraphs of plain text to a section (one empty paragraph if
/// there are none and the section is still empty). An editor shows an
/// empty section as one empty paragraph without writing it; if each client
/// wrote its own on the first keystroke, two people starting at once would
/// get two paragraphs. The server writes it once instead.
pub fn write_paragraphs(txn: &mut TransactionMut, section_id: &str, paragraphs: &[&str]) {
    let fragment = txn.get_or_insert_xml_fragment(section_root(section_id).as_str());
    if paragraphs.is_empty() && fragment.len(txn) == 0 {
        fragment.push_back(txn, XmlElementPrelim::empty("paragraph"));
    }
    for text in paragraphs {
        let paragraph = fragment.push_back(txn, XmlElementPrelim::empty("paragraph"));
        paragraph.push_back(txn, XmlTextPrelim::new(*text));
    }
}

/// Announces a lock in the document: `protocol.state = "locked"` with the
/// protocol's hash and the lock time.
pub fn write_locked(txn: &mut TransactionMut, hash: &str, locked_at: &str) {
    let map = txn.get_or_insert_map(PROTOCOL);
    map.insert(txn, "state", "locked");
    map.insert(txn, "hash", hash);
    map.insert(txn, "lockedAt", locked_at);
}

/// Announces that the protocol is a draft again.
pub fn write_draft(txn: &mut TransactionMut) {
    let map = txn.get_or_insert_map(PROTOCOL);
    map.insert(txn, "state", "draft");
    map.remove(txn, "hash");
    map.remove(txn, "lockedAt");
}
