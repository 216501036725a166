//! What travels between nodes, sealed: every message carries an
//! HMAC-SHA256 under a cluster key (`store::ClusterKeys`), over the channel
//! it is published on, the key's id and the message, which names its
//! publisher (`origin`, random per process), a sequence number of that
//! publisher and the time it was published. A receiver refuses what it
//! cannot verify, what was published outside the replay window and what it
//! has seen already.
//!
//! On the wire (readable with `redis-cli`):
//! `v1.<key id>.<MAC, 64 hex digits>.<JSON {"origin","seq","ts","event"}>`.
//! The MAC is checked before the JSON is parsed, and compared in constant
//! time (`hmac`'s `verify_slice`).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use uuid::Uuid;

use crate::store::KeySecret;

type HmacSha256 = Hmac<Sha256>;

/// How far a message's publish time may be from the receiver's clock, in
/// either direction. Nodes' clocks must agree within it (NTP).
pub const REPLAY_WINDOW: Duration = Duration::from_secs(60);

/// Sequence numbers of one publisher a receiver remembers below the
/// highest it has seen: Redis delivers one publisher's messages in order,
/// so only a resend after a broken connection repeats recent ones.
const REORDER: u64 = 128;

/// What the MAC is computed over besides the message: a fixed context, the
/// channel and the key id, each ended by a newline (neither contains one).
const CONTEXT: &[u8] = b"protokoll-cluster-v1\n";

/// Why a message was refused; the `why` label of
/// `protokoll_cluster_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not in the sealed form, or its MAC does not verify.
    Unauthenticated,
    /// Signed with a key this node does not know (or that is retired).
    UnknownKey,
    /// Published outside the replay window.
    Expired,
    /// Seen already (a replay, or a resend after a broken connection).
    Replayed,
    /// Authenticated, but not a message this version understands.
    Unreadable,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::Unauthenticated => "unauthenticated",
            Refused::UnknownKey => "unknown_key",
            Refused::Expired => "expired",
            Refused::Replayed => "replayed",
            Refused::Unreadable => "unreadable",
        }
    }
}

/// Seals `event` (its JSON) for `channel`.
pub fn seal(
    key_id: i64,
    secret: &KeySecret,
    channel: &str,
    origin: Uuid,
    seq: u64,
    ts_ms: i64,
    event: &[u8],
) -> Vec<u8> {
    // The event is JSON already; the envelope around it is written here
    // so that it is encoded once, when it is queued.
    let mut body = Vec::with_capacity(event.len() + 96);
    body.extend_from_slice(
        format!(r#"{{"origin":"{origin}","seq":{seq},"ts":{ts_ms},"event":"#).as_bytes(),
    );
    body.extend_from_slice(event);
    body.push(b'}');
    let kid = key_id.to_string();
    let tag = mac(secret, channel, &kid)
        .chain_update(&body)
        .finalize()
        .into_bytes();
    let mut wire = Vec::with_capacity(body.len() + 96);
    wire.extend_from_slice(b"v1.");
    wire.extend_from_slice(kid.as_bytes());
    wire.push(b'.');
    wire.extend_from_slice(hex(&tag).as_bytes());
    wire.push(b'.');
    wire.extend_from_slice(&body);
    wire
}

fn mac(secret: &KeySecret, channel: &str, kid: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose()).expect("HMAC takes any key length");
    mac.update(CONTEXT);
    mac.update(channel.as_bytes());
    mac.update(b"\n");
    mac.update(kid.as_bytes());
    mac.update(b"\n");
    mac
}

/// A message split into its parts, not yet verified.
pub struct Unverified<'a> {
    pub key_id: i64,
    kid: &'a str,
    tag: [u8; 32],
    body: &'a [u8],
}

/// Splits a message from the wire; `None` if it is not sealed at all.
pub fn parse(wire: &[u8]) -> Option<Unverified<'_>> {
    let rest = wire.strip_prefix(b"v1.")?;
    let dot = rest.iter().position(|b| *b == b'.')?;
    let kid = std::str::from_utf8(&rest[..dot]).ok()?;
    let key_id: i64 = kid.parse().ok()?;
    if kid != key_id.to_string() {
        // One spelling per id ("07" is not 7): the MAC covers the text.
        return None;
    }
    let rest = &rest[dot + 1..];
    if rest.len() < 65 || rest[64] != b'.' {
        return None;
    }
    let tag = unhex32(&rest[..64])?;
    Some(Unverified {
        key_id,
        kid,
        tag,
        body: &rest[65..],
    })
}

/// The envelope inside a verified message.
#[derive(Debug, Deserialize)]
pub struct Opened<E> {
    pub origin: Uuid,
    pub seq: u64,
    /// Publish time, milliseconds since the Unix epoch.
    pub ts: i64,
    pub event: E,
}

impl Unverified<'_> {
    /// Verifies the MAC under `secret` and reads the envelope.
    pub fn open<E: for<'de> Deserialize<'de>>(
        &self,
        secret: &KeySecret,
        channel: &str,
    ) -> Result<Opened<E>, Refused> {
        mac(secret, channel, self.kid)
            .chain_update(self.body)
            .verify_slice(&self.tag)
            .map_err(|_| Refused::Unauthenticated)?;
        serde_json::from_slice(self.body).map_err(|_| Refused::Unreadable)
    }
}

/// Whether a publish time is within the replay window of `now_ms`.
pub fn fresh(ts_ms: i64, now_ms: i64) -> bool {
    now_ms.abs_diff(ts_ms) <= REPLAY_WINDOW.as_millis() as u64
}

/// Which (publisher, sequence number) pairs were seen within the replay
/// window. A publisher not heard from for three windows is forgotten: any
/// message of its is outside the window by then (even from a clock a
/// whole window ahead), so `fresh` refuses it.
#[derive(Default)]
pub struct Seen {
    by_origin: HashMap<Uuid, Window>,
    pruned: Option<Instant>,
}

struct Window {
    /// The highest sequence number seen.
    top: u64,
    /// Bit i: `top - 1 - i` was seen.
    below: u128,
    heard: Instant,
}

impl Seen {
    /// Records `seq` of `origin`; false if it was seen already (or is too
    /// far below what was seen to tell).
    pub fn first_time(&mut self, origin: Uuid, seq: u64, now: Instant) -> bool {
        self.prune(now);
        let Some(w) = self.by_origin.get_mut(&origin) else {
            self.by_origin.insert(
                origin,
                Window {
                    top: seq,
                    below: 0,
                    heard: now,
                },
            );
            return true;
        };
        w.heard = now;
        if seq > w.top {
            let shift = seq - w.top;
            w.below = if shift > REORDER {
                0
            } else {
                // The old top becomes bit shift-1.
                ((w.below << 1) | 1) << (shift - 1)
            };
            w.top = seq;
            return true;
        }
        let back = w.top - seq;
        if back == 0 || back > REORDER {
            return false;
        }
        let bit = 1u128 << (back - 1);
        if w.below & bit != 0 {
            return false;
        }
        w.below |= bit;
        true
    }

    fn prune(&mut self, now: Instant) {
        if self
            .pruned
            .is_some_and(|at| now.duration_since(at) < REPLAY_WINDOW)
        {
            return;
        }
        self.pruned = Some(now);
        self.by_origin
            .retain(|_, w| now.duration_since(w.heard) < 3 * REPLAY_WINDOW);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &[u8]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = std::str::from_utf8(text.get(2 * i..2 * i + 2)?).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> KeySecret {
        KeySecret::from_bytes([byte; 32])
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Event {
        kind: String,
    }

    fn sealed() -> Vec<u8> {
        seal(
            7,
            &secret(1),
            "protokoll:account",
            Uuid::nil(),
            3,
            1_000,
            br#"{"kind":"x"}"#,
        )
    }

    #[test]
    fn a_sealed_message_opens_with_its_key_and_channel_only() {
        let wire = sealed();
        let m = parse(&wire).expect("sealed");
        assert_eq!(m.key_id, 7);
        let opened: Opened<Event> = m.open(&secret(1), "protokoll:account").unwrap();
        assert_eq!((opened.seq, opened.ts), (3, 1_000));
        assert_eq!(opened.event.kind, "x");
        assert_eq!(
            m.open::<Event>(&secret(2), "protokoll:account").err(),
            Some(Refused::Unauthenticated),
            "another key"
        );
        assert_eq!(
            m.open::<Event>(&secret(1), "protokoll:meeting:x").err(),
            Some(Refused::Unauthenticated),
            "another channel"
        );
    }

    #[test]
    fn any_changed_byte_fails_the_mac() {
        let wire = sealed();
        for i in 0..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 0x01;
            let opened = parse(&bad).map(|m| {
                if m.key_id != 7 {
                    return Err(Refused::UnknownKey);
                }
                m.open::<Event>(&secret(1), "protokoll:account")
            });
            assert!(
                !matches!(opened, Some(Ok(_))),
                "byte {i} changed and still opened"
            );
        }
    }

    #[test]
    fn plain_json_and_mangled_frames_are_not_sealed() {
        assert!(parse(br#"{"origin":"x","kind":"account"}"#).is_none());
        assert!(parse(b"v1.7.abc.{}").is_none());
        assert!(parse(b"v1.07.").is_none());
        assert!(parse(b"").is_none());
        let mut long_tag = sealed();
        long_tag.insert(10, b'0');
        assert!(parse(&long_tag).is_none());
    }

    #[test]
    fn the_window_refuses_repeats_and_stale_times() {
        let now = Instant::now();
        let mut seen = Seen::default();
        let a = Uuid::new_v4();
        assert!(seen.first_time(a, 5, now));
        assert!(!seen.first_time(a, 5, now), "a replay");
        assert!(seen.first_time(a, 7, now));
        assert!(seen.first_time(a, 6, now), "late, but not seen");
        assert!(!seen.first_time(a, 6, now));
        assert!(!seen.first_time(a, 5, now));
        assert!(seen.first_time(a, 7 + 200, now));
        assert!(!seen.first_time(a, 7, now), "too far below to tell");
        assert!(seen.first_time(Uuid::new_v4(), 5, now), "another publisher");
        assert!(fresh(1_000, 1_000 + 60_000));
        assert!(!fresh(1_000, 1_000 + 60_001));
        assert!(!fresh(1_000 + 60_001, 1_000), "from the future");
    }
}
