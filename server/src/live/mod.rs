//! Open connections by who opened them, so that revoking a credential or
//! removing a participant closes their sockets at once (`account`), and so
//! that one node-level task (`recheck`) can check them all in a few
//! queries.
//!
//! In the layers it sits above `sync` (it closes connections through
//! `sync::Closer`) and `cluster` (whose account events it applies), below
//! the HTTP layer that registers every socket here. The cluster reaches it
//! only through the closure `lib.rs` gives it ([`account::remote`]).

pub mod account;
pub mod recheck;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, Weak},
};

use chrono::{DateTime, Utc};

use crate::{
    access::Principal,
    auth::{Credential, CredentialKey},
    cluster::Whom,
    meeting::MeetingId,
    people::{Role, UserId},
    sync::{CloseReason, Closer},
};

struct Entry {
    meeting: MeetingId,
    user: UserId,
    credential: CredentialKey,
    /// When the credential (a session) ends, as it was when the
    /// connection opened.
    expires_at: Option<DateTime<Utc>>,
    /// Administrators may open every meeting, participants or not: they
    /// are never closed for not being a participant.
    is_admin: bool,
    /// The person's role in the meeting when the connection opened: it
    /// decides what the connection may write.
    role: Option<Role>,
    closer: Weak<Closer>,
}

/// What the open connections rest on: each credential once (with its end,
/// if it has one), and each (meeting, person) once.
#[derive(Debug, Default)]
pub struct Held {
    pub credentials: HashMap<CredentialKey, Option<DateTime<Utc>>>,
    pub participations: HashSet<(MeetingId, UserId)>,
}

/// Which connections to look at.
#[derive(Debug, Clone, Copy)]
pub enum Named {
    All,
    Credential(CredentialKey),
    User(UserId),
    Participant(MeetingId, UserId),
}

impl From<Whom> for Named {
    fn from(whom: Whom) -> Self {
        match whom {
            Whom::Credential(key) => Named::Credential(key),
            Whom::User(user) => Named::User(user),
            Whom::Participant(meeting, user) => Named::Participant(meeting, user),
        }
    }
}

impl Named {
    fn matches(&self, e: &Entry) -> bool {
        match self {
            Named::All => true,
            Named::Credential(key) => e.credential == *key,
            Named::User(user) => e.user == *user,
            Named::Participant(meeting, user) => e.meeting == *meeting && e.user == *user,
        }
    }
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
                role: principal.role,
                closer: Arc::downgrade(closer),
            },
        );
        Registration {
            live: self.clone(),
            id,
        }
    }

    /// The distinct credentials and (meeting, person) pairs of the open
    /// connections `named`.
    pub fn held(&self, named: Named) -> Held {
        let entries = self.entries.lock().expect("live lock");
        let mut held = Held::default();
        for e in entries.values().filter(|e| named.matches(e)) {
            held.credentials.insert(e.credential, e.expires_at);
            held.participations.insert((e.meeting, e.user));
        }
        held
    }

    /// Closes the connections `named`.
    pub fn close(&self, named: Named, reason: CloseReason) -> usize {
        self.close_where(named, reason, |_| true)
    }

    /// Closes the connections `named` for which `pred` holds (the
    /// recheck's rules: see `recheck::check`).
    fn close_where(
        &self,
        named: Named,
        reason: CloseReason,
        pred: impl Fn(&Entry) -> bool,
    ) -> usize {
        let closers: Vec<_> = self
            .entries
            .lock()
            .expect("live lock")
            .values()
            .filter(|e| named.matches(e) && pred(e))
            .filter_map(|e| e.closer.upgrade())
            // Closed already (its first reason is the one it gets).
            .filter(|c| c.reason().is_none())
            .collect();
        for closer in &closers {
            closer.close(reason.clone());
        }
        closers.len()
    }
}
