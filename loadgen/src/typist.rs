//! A writer's document: its own Yjs doc with its own client id, typing into
//! its own section the way an editor binding does (ProseMirror nodes in a
//! `Y.XmlFragment`): a paragraph, then one character per update, a new
//! paragraph every so often.

use yrs::{
    ClientID, Doc, ReadTxn, StateVector, Text, Transact, XmlElementPrelim, XmlFragment,
    XmlFragmentRef, XmlTextPrelim, XmlTextRef, updates::decoder::Decode, updates::encoder::Encode,
};
#[cfg(test)]
use yrs::{GetString, Update};

/// Characters per paragraph before the typist starts a new one.
const PARAGRAPH_CHARS: u32 = 80;
const TEXT: &[u8] =
    b"the council discussed the situation in the town centre and agreed to meet again ";

/// One update a typist produced.
pub struct Typed {
    /// Yjs v1 update.
    pub update: Vec<u8>,
    /// First clock the update's items occupy.
    pub clock: u32,
}

pub struct Typist {
    doc: Doc,
    client: u64,
    section: XmlFragmentRef,
    paragraph: Option<XmlTextRef>,
    paragraph_len: u32,
    typed: u64,
}

impl Typist {
    /// `root` is the section's root name, e.g. `section:w3`.
    pub fn new(client: u64, root: &str) -> Self {
        let doc = Doc::with_client_id(client);
        let section = doc.get_or_insert_xml_fragment(root);
        Typist {
            doc,
            client,
            section,
            paragraph: None,
            paragraph_len: 0,
            typed: 0,
        }
    }

    fn clock(&self) -> u32 {
        self.doc
            .transact()
            .state_vector()
            .get(&ClientID::new(self.client))
    }

    /// Types one character; starts a paragraph first when there is none or
    /// the current one is long enough (that update then also carries the
    /// new paragraph element).
    pub fn type_char(&mut self) -> Typed {
        let clock = self.clock();
        let ch = TEXT[(self.typed % TEXT.len() as u64) as usize] as char;
        self.typed += 1;
        let mut txn = self.doc.transact_mut();
        let text = match &self.paragraph {
            Some(t) if self.paragraph_len < PARAGRAPH_CHARS => t.clone(),
            _ => {
                let p = self
                    .section
                    .push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
                let t = p.push_back(&mut txn, XmlTextPrelim::new(""));
                self.paragraph = Some(t.clone());
                self.paragraph_len = 0;
                t
            }
        };
        text.push(&mut txn, ch.encode_utf8(&mut [0; 4]));
        self.paragraph_len += 1;
        let update = txn.encode_update_v1();
        Typed { update, clock }
    }

    /// Yjs v1 state vector of this doc.
    pub fn state_vector(&self) -> Vec<u8> {
        self.doc.transact().state_vector().encode_v1()
    }

    /// What the doc has beyond `state_vector` (Yjs v1), for answering the
    /// server's sync step 1.
    pub fn diff(&self, state_vector: &[u8]) -> Vec<u8> {
        let sv = StateVector::decode_v1(state_vector).unwrap_or_default();
        self.doc.transact().encode_state_as_update_v1(&sv)
    }

    /// The section's text (for tests).
    #[cfg(test)]
    pub fn text(&self) -> String {
        self.section.get_string(&self.doc.transact())
    }

    /// Applies a remote update (for tests).
    #[cfg(test)]
    pub fn apply(&self, update: &[u8]) -> anyhow::Result<()> {
        let u = Update::decode_v1(update)?;
        self.doc.transact_mut().apply_update(u)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_one_character_per_update_into_paragraphs() {
        let mut t = Typist::new(42, "section:w0");
        let first = t.type_char();
        assert_eq!(first.clock, 0);
        // paragraph element + text node + one character
        let second = t.type_char();
        assert_eq!(second.clock, 3);
        let third = t.type_char();
        assert_eq!(third.clock, 4);
        assert_eq!(t.text(), "<paragraph>the</paragraph>");

        let other = Typist::new(43, "section:w0");
        for u in [&first, &second, &third] {
            other.apply(&u.update).unwrap();
        }
        assert_eq!(other.text(), "<paragraph>the</paragraph>");
        for _ in 3..PARAGRAPH_CHARS + 1 {
            t.type_char();
        }
        assert_eq!(t.text().matches("<paragraph>").count(), 2);
    }

    #[test]
    fn answers_sync_step_1_with_what_the_server_lacks() {
        let mut t = Typist::new(42, "section:w0");
        t.type_char();
        let empty = StateVector::default().encode_v1();
        let other = Typist::new(43, "section:w0");
        other.apply(&t.diff(&empty)).unwrap();
        assert_eq!(other.text(), t.text());
        assert_eq!(t.diff(&t.state_vector()), Update::EMPTY_V1);
    }
}
