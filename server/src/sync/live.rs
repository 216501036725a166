//! Open connections by who opened them, so that revoking a credential or
//! removing a participant closes their sockets at once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use super::{CloseReason, Closer};
use crate::{auth::CredentialKey, meeting::MeetingId, people::UserId};

struct Entry {
    meeting: MeetingId,
    user: UserId,
    credential: CredentialKey,
    closer: Weak<Closer>,
}

#[derive(Default)]
pub struct LiveConnections {
    // std Mutex: held for map operations only.
    entries: Mutex<HashMap<u64, Entry>>,
    next: std::sync::atomic::AtomicU64,
}

/// Removes its connection from the registry when dropped.
pub struct Registration {
    live: Arc<LiveConnections>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.live
            .entries
            .lock()
            .expect("live lock")
            .remove(&self.id);
    }
}

impl LiveConnections {
    pub fn register(
        self: &Arc<Self>,
        meeting: MeetingId,
        user: UserId,
        credential: CredentialKey,
        closer: &Arc<Closer>,
    ) -> Registration {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.entries.lock().expect("live lock").insert(
            id,
            Entry {
                meeting,
                user,
                credential,
                closer: Arc::downgrade(closer),
            },
        );
        Registration {
            live: self.clone(),
            id,
        }
    }

    fn close_where(&self, reason: CloseReason, pred: impl Fn(&Entry) -> bool) -> usize {
        let closers: Vec<_> = self
            .entries
            .lock()
            .expect("live lock")
            .values()
            .filter(|e| pred(e))
            .filter_map(|e| e.closer.upgrade())
            .collect();
        for closer in &closers {
            closer.close(reason.clone());
        }
        closers.len()
    }

    pub fn close_credential(&self, credential: CredentialKey, reason: CloseReason) -> usize {
        self.close_where(reason, |e| e.credential == credential)
    }

    pub fn close_user(&self, user: UserId, reason: CloseReason) -> usize {
        self.close_where(reason, |e| e.user == user)
    }

    pub fn close_participant(
        &self,
        meeting: MeetingId,
        user: UserId,
        reason: CloseReason,
    ) -> usize {
        self.close_where(reason, |e| e.meeting == meeting && e.user == user)
    }
}
