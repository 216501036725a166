//! The shape of a meeting document (see `docs/document-schema.md`): which
//! root types exist and what they are called. Shared by the demo data, the
//! tests and, later, the section guard.

use yrs::{
    Array, ArrayRef, Doc, MapPrelim, Transact, WriteTxn, XmlElementPrelim, XmlFragment,
    XmlTextPrelim,
};

/// Root `Y.Array` of agenda items, each a `Y.Map` with `id`, `number`,
/// `title` and `owner`.
pub const AGENDA: &str = "agenda";

/// Root name of a section's `Y.XmlFragment`.
pub fn section_root(section_id: &str) -> String {
    format!("section:{section_id}")
}

/// An agenda item with its initial text, for seeding a document.
pub struct SeedSection<'a> {
    pub id: &'a str,
    pub number: &'a str,
    pub title: &'a str,
    pub owner: &'a str,
    pub paragraphs: &'a [&'a str],
}

/// Writes the agenda and each section's paragraphs into `doc` in one
/// transaction.
pub fn seed(doc: &Doc, sections: &[SeedSection<'_>]) {
    let mut txn = doc.transact_mut();
    let agenda: ArrayRef = txn.get_or_insert_array(AGENDA);
    for s in sections {
        agenda.push_back(
            &mut txn,
            MapPrelim::from([
                ("id", yrs::In::from(s.id)),
                ("number", yrs::In::from(s.number)),
                ("title", yrs::In::from(s.title)),
                ("owner", yrs::In::from(s.owner)),
            ]),
        );
        let fragment = txn.get_or_insert_xml_fragment(section_root(s.id).as_str());
        for text in s.paragraphs {
            let paragraph = fragment.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
            paragraph.push_back(&mut txn, XmlTextPrelim::new(*text));
        }
    }
}
