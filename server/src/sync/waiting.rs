//! Updates of one connection that wait for the part of their history the
//! server does not have yet.
//!
//! yrs and Yjs keep an update whose blocks start ahead of the document's
//! clock for their client (or that builds on items the document does not
//! hold) pending, and integrate it once the missing part arrives. An honest
//! client sends such updates whenever it sends a change before the changes
//! it builds on have reached the server: keystrokes typed offline, then one
//! typed as the socket opens (y-websocket sends it at once, and the offline
//! ones only in its sync step 2, answering the server's sync step 1); or
//! typing on while the database was away, when the server could not store
//! a connection's updates and asks for them again (sync step 1) once it is
//! back. The section guard cannot place such an update, and handing it to
//! yrs to keep pending would let the part that fills it in arrive
//! unchecked (round two's finding 1). So it waits here, outside the
//! document: nothing of it is applied, stored, broadcast or answered from
//! until the document holds everything it builds on; then it goes through
//! the guard as a whole, like any update, and is refused if the whole is
//! forbidden.
//!
//! An update may only wait on a connection that the server has asked for
//! what it lacks (a sync step 1 not answered yet) or will ask (its updates
//! were not stored): otherwise the part it builds on is not coming, and it
//! is refused at once as before. Waiting is bounded per connection: at
//! most `MAX_UPDATES` updates and `MAX_BYTES` bytes (the first update
//! always fits, whatever its size, within the message size limit), each
//! for at most `MAX_WAIT`. Past any bound the connection is refused (4403)
//! with the reason.
//!
//! Never: give a waiting update to the document, or keep one unbounded.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use bytes::Bytes;

use super::GuardedDoc;
use crate::guard::{Missing, Refusal};

/// Updates one connection may hold back. Typing is 5-20 updates a second,
/// and an honest client's missing part arrives within a round trip of the
/// server's sync step 1; 256 is many seconds of fast typing.
pub const MAX_UPDATES: usize = 256;
/// Bytes of updates one connection may hold back (the default message size
/// limit: a paste waits too).
pub const MAX_BYTES: usize = 1024 * 1024;
/// How long an update may wait for the part it builds on: a round trip
/// and the room's turn, many times over.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// The refusal's reason once an update has waited `MAX_WAIT`.
pub const EXPIRED: &str = "waited 10 s for them";

/// An update that waits, kept as its bytes only (read again when it is
/// let through: its decoded forms take several times the space).
#[derive(Debug)]
pub struct Held {
    pub payload: Bytes,
    pub sync_step_2: bool,
    /// When it arrived: waiting again after a rebuild does not restart it.
    pub since: Instant,
    missing: Missing,
}

/// The updates one connection holds back, in arrival order.
#[derive(Debug, Default)]
pub struct Waiting {
    held: VecDeque<Held>,
    bytes: usize,
}

impl Waiting {
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Holds an update back until the document holds `missing`; refuses if
    /// the connection holds as much as it may already.
    pub fn hold(
        &mut self,
        payload: Bytes,
        sync_step_2: bool,
        missing: Missing,
        since: Instant,
    ) -> Result<(), Refusal> {
        if self.held.len() >= MAX_UPDATES {
            return Err(Refusal::Unfilled("too many updates waited for them"));
        }
        if !self.held.is_empty() && self.bytes + payload.len() > MAX_BYTES {
            return Err(Refusal::Unfilled(
                "too many bytes of updates waited for them",
            ));
        }
        self.bytes += payload.len();
        self.held.push_back(Held {
            payload,
            sync_step_2,
            since,
            missing,
        });
        Ok(())
    }

    /// The first update (in arrival order) whose missing part the document
    /// now holds, taken out to be checked and applied.
    pub fn take_ready(&mut self, doc: &GuardedDoc) -> Option<Held> {
        let at = self.held.iter().position(|h| doc.holds(&h.missing))?;
        let held = self.held.remove(at)?;
        self.bytes -= held.payload.len();
        Some(held)
    }

    /// When the longest-waiting update has waited `MAX_WAIT`.
    pub fn deadline(&self) -> Option<Instant> {
        self.held.iter().map(|h| h.since + MAX_WAIT).min()
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(client: u64, clock: u32) -> Missing {
        Missing::from_buf([(client, clock)])
    }

    #[test]
    fn a_connection_holds_a_bounded_number_of_updates_and_bytes() {
        let now = Instant::now();
        let mut waiting = Waiting::default();
        for _ in 0..MAX_UPDATES {
            waiting
                .hold(Bytes::from_static(b"x"), false, missing(1, 5), now)
                .unwrap();
        }
        assert!(matches!(
            waiting.hold(Bytes::from_static(b"x"), false, missing(1, 5), now),
            Err(Refusal::Unfilled(_))
        ));

        let mut waiting = Waiting::default();
        // One update larger than the byte bound still waits alone.
        let big = Bytes::from(vec![0u8; MAX_BYTES + 1]);
        waiting.hold(big, true, missing(1, 5), now).unwrap();
        assert!(
            waiting
                .hold(Bytes::from_static(b"x"), false, missing(1, 5), now)
                .is_err()
        );
    }

    #[test]
    fn the_expiry_reason_names_the_wait() {
        assert!(EXPIRED.contains(&format!("{} s", MAX_WAIT.as_secs())));
    }

    #[test]
    fn the_deadline_is_the_oldest_updates() {
        let now = Instant::now();
        let mut waiting = Waiting::default();
        assert_eq!(waiting.deadline(), None);
        waiting
            .hold(Bytes::from_static(b"a"), false, missing(1, 5), now)
            .unwrap();
        waiting
            .hold(
                Bytes::from_static(b"b"),
                false,
                missing(1, 5),
                now + Duration::from_secs(3),
            )
            .unwrap();
        assert_eq!(waiting.deadline(), Some(now + MAX_WAIT));
        assert!(!waiting.expired(now + MAX_WAIT - Duration::from_millis(1)));
        assert!(waiting.expired(now + MAX_WAIT));
    }

    #[test]
    fn an_update_is_let_through_once_the_document_holds_what_it_builds_on() {
        use yrs::{Text, Transact, WriteTxn};
        let client = yrs::Doc::with_client_id(9);
        let mut updates = Vec::new();
        for (at, c) in ["a", "b", "c"].into_iter().enumerate() {
            let mut txn = client.transact_mut();
            let text = txn.get_or_insert_text("t");
            text.insert(&mut txn, at as u32, c);
            updates.push(txn.encode_update_v1());
        }
        let mut doc = GuardedDoc::default();
        let structure = |u: &[u8]| crate::guard::decode(u).unwrap();
        // "c" first: it builds on "a" and "b", which the document lacks.
        let need = doc
            .missing(&structure(&updates[2]))
            .expect("something is missing");
        assert_eq!(need.as_slice(), &[(9, 2)]);
        let mut waiting = Waiting::default();
        waiting
            .hold(Bytes::from(updates[2].clone()), false, need, Instant::now())
            .unwrap();
        assert!(waiting.take_ready(&doc).is_none());
        assert!(doc.apply_trusted(&updates[0]));
        assert!(waiting.take_ready(&doc).is_none(), "\"b\" is still missing");
        assert!(doc.apply_trusted(&updates[1]));
        let ready = waiting.take_ready(&doc).expect("let through");
        assert_eq!(ready.payload.as_ref(), updates[2].as_slice());
        assert!(waiting.is_empty());
        assert_eq!(doc.missing(&structure(&updates[2])), None);
    }
}
