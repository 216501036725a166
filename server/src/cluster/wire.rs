//! What nodes say to each other: the events inside the sealed envelopes
//! (`envelope`), as JSON that `redis-cli` can read, with binary parts in
//! base64.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};

use super::AccountEvent;
use crate::{meeting::MeetingId, people::UserId, store::Seq};

/// Base64 on the wire: the messages are JSON, readable with `redis-cli`.
#[derive(Debug, Clone)]
pub(super) struct B64(pub(super) Vec<u8>);

impl Serialize for B64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text)
            .map(B64)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Event {
    Updates {
        meeting: MeetingId,
        first: Seq,
        last: Seq,
        updates: Vec<B64>,
        #[serde(default)]
        owners: Vec<(u64, UserId)>,
        #[serde(default)]
        ownership: bool,
        #[serde(default)]
        locked: Option<bool>,
    },
    Locked {
        meeting: MeetingId,
        locked: bool,
    },
    Presence {
        meeting: MeetingId,
        frame: B64,
        user: Option<UserId>,
    },
    Account(AccountEvent),
    /// The cluster keys changed (`protokoll cluster rotate-key`): read
    /// them again.
    Keys,
}

/// Milliseconds since the Unix epoch: the publish time inside a sealed
/// message.
pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::{cluster::envelope, store::KeySecret};

    #[test]
    fn update_messages_round_trip_sealed() {
        let event = Event::Updates {
            meeting: MeetingId::new(),
            first: 3,
            last: 4,
            updates: vec![B64(vec![1, 2]), B64(vec![])],
            owners: vec![(7, UserId::new())],
            ownership: true,
            locked: None,
        };
        let json = serde_json::to_vec(&event).unwrap();
        let secret = KeySecret::from_bytes([9; 32]);
        let origin = Uuid::new_v4();
        let wire = envelope::seal(1, &secret, "protokoll:meeting:x", origin, 5, 42, &json);
        let message = envelope::parse(&wire).unwrap();
        let back: envelope::Opened<Event> = message.open(&secret, "protokoll:meeting:x").unwrap();
        assert_eq!((back.origin, back.seq, back.ts), (origin, 5, 42));
        match back.event {
            Event::Updates {
                first,
                last,
                updates,
                ..
            } => {
                assert_eq!((first, last), (3, 4));
                assert_eq!(updates[0].0, vec![1, 2]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn key_change_notices_encode() {
        let json = serde_json::to_string(&Event::Keys).unwrap();
        assert_eq!(json, r#"{"kind":"keys"}"#);
    }
}
