//! Open connections by who opened them, so that revoking a credential or
//! removing a participant closes their sockets at once, and so that one
//! node-level task (`auth::recheck`) can check them all in a few queries.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, Weak},
};

use chrono::{DateTime, Utc};

use super::{CloseReason, Closer};
use crate::{
    access::Principal,
    auth::{Credential, CredentialKey},
    meeting::MeetingId,
    people::UserId,
};

struct Entry {
    meeting: MeetingId,
    user: UserId,
    credential: CredentialKey,
    /// When the credential (a session) ends, as it was when the
    /// connection opened.
    expires_at: Option<DateTime<Utc>>,
    /// Administrators may open every meeting, participants or not: their
    /// participation is never rechecked.
    is_admin: bool,
    closer: Weak<Closer>,
}

/// What the open connections rest on: each credential once (with its end,
/// if it has one), and each participation of a non-administrator once.
#[derive(Debug, Default)]
pub struct Held {
    pub credentials: HashMap<CredentialKey, Option<DateTime<Utc>>>,
    pub participations: HashSet<(MeetingId, UserId)>,
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
        principal: &Principal,
        credential: &Credential,
        closer: &Arc<Closer>,
    ) -> Registration {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.entries.lock().expect("live lock").insert(
            id,
            Entry {
                meeting,
                user: principal.user_id,
                credential: credential.key(),
                expires_at: credential.expires_at(),
                is_admin: principal.is_admin,
                closer: Arc::downgrade(closer),
            },
        );
        Registration {
            live: self.clone(),
            id,
        }
    }

    /// The distinct credentials and participations of the open
    /// connections.
    pub fn held(&self) -> Held {
        let entries = self.entries.lock().expect("live lock");
        let mut held = Held::default();
        for e in entries.values() {
            held.credentials.insert(e.credential, e.expires_at);
            if !e.is_admin {
                held.participations.insert((e.meeting, e.user));
            }
        }
        held
    }

    /// Closes the connections that use any of `credentials`.
    pub fn close_credentials(
        &self,
        credentials: &HashSet<CredentialKey>,
        reason: CloseReason,
    ) -> usize {
        self.close_where(reason, |e| credentials.contains(&e.credential))
    }

    /// Closes the connections of non-administrators that rest on any of
    /// `participations`.
    pub fn close_participations(
        &self,
        participations: &HashSet<(MeetingId, UserId)>,
        reason: CloseReason,
    ) -> usize {
        self.close_where(reason, |e| {
            !e.is_admin && participations.contains(&(e.meeting, e.user))
        })
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
