//! Account events: whose connections every node is to close (a session
//! signed out, a token revoked, a password reset, a participant removed or
//! given another role), with the close code and reason, as they travel
//! between nodes. The cluster only carries them; what a node does with one
//! is `crate::live`'s.

use serde::{Deserialize, Serialize};

use crate::{
    auth::CredentialKey,
    meeting::MeetingId,
    people::{TokenId, UserId},
};

/// Whose connections an account event closes, as it is on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "who", rename_all = "snake_case")]
pub enum Whose {
    /// A session (by the hex of its secret's hash, as the database keeps it).
    Session {
        hash: String,
    },
    Token {
        id: TokenId,
    },
    User {
        id: UserId,
    },
    Participant {
        meeting: MeetingId,
        user: UserId,
    },
}

/// Whose connections an account event closes, read from the wire
/// ([`AccountEvent::whom`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whom {
    Credential(CredentialKey),
    User(UserId),
    Participant(MeetingId, UserId),
}

/// Connections to close on every node, with the close code and reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountEvent {
    #[serde(flatten)]
    pub whose: Whose,
    pub code: u16,
    pub reason: String,
}

impl AccountEvent {
    pub fn credential(key: CredentialKey, code: u16, reason: &'static str) -> Self {
        let whose = match key {
            CredentialKey::Session(hash) => Whose::Session { hash: hex(&hash) },
            CredentialKey::Token(id) => Whose::Token { id },
        };
        Self {
            whose,
            code,
            reason: reason.into(),
        }
    }

    pub fn user(id: UserId, code: u16, reason: &'static str) -> Self {
        Self {
            whose: Whose::User { id },
            code,
            reason: reason.into(),
        }
    }

    pub fn participant(meeting: MeetingId, user: UserId, code: u16, reason: &'static str) -> Self {
        Self {
            whose: Whose::Participant { meeting, user },
            code,
            reason: reason.into(),
        }
    }

    /// The connections it names (`None`: a session hash that is not one).
    pub fn whom(&self) -> Option<Whom> {
        Some(match &self.whose {
            Whose::Session { hash } => Whom::Credential(CredentialKey::Session(unhex(hash)?)),
            Whose::Token { id } => Whom::Credential(CredentialKey::Token(*id)),
            Whose::User { id } => Whom::User(*id),
            Whose::Participant { meeting, user } => Whom::Participant(*meeting, *user),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_hashes_survive_the_wire() {
        let hash = [0xab; 32];
        let event = AccountEvent::credential(CredentialKey::Session(hash), 4401, "signed out");
        let json = serde_json::to_string(&event).unwrap();
        let back: AccountEvent = serde_json::from_str(&json).unwrap();
        match back.whose {
            Whose::Session { hash: ref text } => assert_eq!(unhex(text), Some(hash)),
            ref other => panic!("{other:?}"),
        }
        assert_eq!(
            back.whom(),
            Some(Whom::Credential(CredentialKey::Session(hash)))
        );
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"é".repeat(32)), None);
    }
}
