//! The y-websocket wire protocol (y-protocols' sync, awareness, auth and
//! query-awareness messages), decoded strictly: a frame is accepted only if it
//! consists entirely of well-formed messages, so a truncated or padded frame
//! is an error rather than silently half-read.

use bytes::{BufMut, Bytes, BytesMut};
use yrs::{
    ClientID, StateVector, Update,
    encoding::read::{Cursor, Read},
    sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry},
    updates::decoder::Decode,
};

pub const MSG_SYNC: u8 = 0;
pub const MSG_AWARENESS: u8 = 1;
pub const MSG_AUTH: u8 = 2;
pub const MSG_QUERY_AWARENESS: u8 = 3;

pub const SYNC_STEP_1: u8 = 0;
pub const SYNC_STEP_2: u8 = 1;
pub const SYNC_UPDATE: u8 = 2;

const AUTH_PERMISSION_DENIED: u8 = 0;

/// One decoded message from a client.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "updates are the common message and carry a keystroke's block inline; boxing \
              them would allocate once more per keystroke"
)]
pub enum Inbound {
    /// "Here is my state vector; send me what I lack."
    SyncStep1(StateVector),
    /// A document update, either as a sync step 2 answer or a live update.
    Update(IncomingUpdate),
    Awareness(IncomingAwareness),
    QueryAwareness,
    /// Clients do not send auth messages in y-websocket; tolerated and ignored.
    Auth,
}

#[derive(Debug)]
pub struct IncomingUpdate {
    pub update: Update,
    /// The update exactly as the client encoded it (Yjs v1), for the log.
    pub payload: Bytes,
    /// The frame to broadcast to the other clients: an update message
    /// carrying `payload`. When the client sent exactly that, it is the
    /// client's own frame, shared rather than copied.
    pub broadcast: Bytes,
    pub sync_step_2: bool,
    /// The update's blocks and delete set, for the section guard (decoded
    /// here, on the connection's task, so the room only looks them up).
    pub structure: crate::guard::Decoded,
}

impl IncomingUpdate {
    /// Reads an update (Yjs v1) again from its bytes: an update that
    /// waited (`super::waiting`) keeps only those.
    pub fn decode(payload: Bytes, sync_step_2: bool) -> Result<Self, ProtocolError> {
        let structure =
            crate::guard::decode(&payload).map_err(|_| ProtocolError::UndecodableUpdate)?;
        let update = Update::decode_v1(&payload).map_err(|_| ProtocolError::UndecodableUpdate)?;
        Ok(Self {
            update,
            broadcast: encode_update(&payload),
            payload,
            sync_step_2,
            structure,
        })
    }
}

#[derive(Debug)]
pub struct IncomingAwareness {
    pub update: AwarenessUpdate,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("empty frame")]
    Empty,
    #[error("malformed {0} message")]
    Malformed(&'static str),
    #[error("unknown message type {0}")]
    UnknownMessageType(u64),
    #[error("unknown sync message type {0}")]
    UnknownSyncType(u64),
    #[error("the document update could not be decoded")]
    UndecodableUpdate,
    #[error("the awareness update could not be decoded")]
    UndecodableAwareness,
}

/// Decodes every message in one WebSocket binary frame.
pub fn decode_frame(frame: &Bytes) -> Result<Vec<Inbound>, ProtocolError> {
    if frame.is_empty() {
        return Err(ProtocolError::Empty);
    }
    let mut cursor = Cursor::new(frame);
    let mut out = Vec::with_capacity(1);
    while cursor.has_content() {
        let start = cursor.next;
        let tag: u64 = cursor
            .read_var()
            .map_err(|_| ProtocolError::Malformed("message"))?;
        let msg = match tag {
            t if t == MSG_SYNC as u64 => decode_sync(frame, &mut cursor, start)?,
            t if t == MSG_AWARENESS as u64 => {
                let buf = cursor
                    .read_buf()
                    .map_err(|_| ProtocolError::Malformed("awareness"))?;
                let update = decode_awareness(buf)?;
                Inbound::Awareness(IncomingAwareness { update })
            }
            t if t == MSG_AUTH as u64 => {
                let kind: u8 = cursor
                    .read_var()
                    .map_err(|_| ProtocolError::Malformed("auth"))?;
                if kind == AUTH_PERMISSION_DENIED {
                    cursor
                        .read_string()
                        .map_err(|_| ProtocolError::Malformed("auth"))?;
                }
                Inbound::Auth
            }
            t if t == MSG_QUERY_AWARENESS as u64 => Inbound::QueryAwareness,
            other => return Err(ProtocolError::UnknownMessageType(other)),
        };
        out.push(msg);
    }
    Ok(out)
}

fn decode_sync(frame: &Bytes, cursor: &mut Cursor, start: usize) -> Result<Inbound, ProtocolError> {
    let kind: u64 = cursor
        .read_var()
        .map_err(|_| ProtocolError::Malformed("sync"))?;
    let buf = cursor
        .read_buf()
        .map_err(|_| ProtocolError::Malformed("sync"))?;
    match kind {
        k if k == SYNC_STEP_1 as u64 => Ok(Inbound::SyncStep1(decode_state_vector(buf)?)),
        k if k == SYNC_STEP_2 as u64 || k == SYNC_UPDATE as u64 => {
            // The guard's reading first: it refuses what yrs must never see
            // (client ids beyond 53 bits, which yrs asserts against).
            let structure =
                crate::guard::decode(buf).map_err(|_| ProtocolError::UndecodableUpdate)?;
            let update = Update::decode_v1(buf).map_err(|_| ProtocolError::UndecodableUpdate)?;
            let payload = frame.slice_ref(buf);
            let whole_frame = start == 0 && cursor.next == frame.len();
            let broadcast = if k == SYNC_UPDATE as u64 && whole_frame {
                frame.clone()
            } else {
                encode_update(&payload)
            };
            Ok(Inbound::Update(IncomingUpdate {
                update,
                payload,
                broadcast,
                sync_step_2: k == SYNC_STEP_2 as u64,
                structure,
            }))
        }
        other => Err(ProtocolError::UnknownSyncType(other)),
    }
}

/// Reads a client id as y-protocols writes it, refusing what Yjs could not
/// read (more than 53 bits) and yrs would silently truncate.
fn client_id(cursor: &mut Cursor, what: &'static str) -> Result<ClientID, ProtocolError> {
    let id: u64 = cursor
        .read_var()
        .map_err(|_| ProtocolError::Malformed(what))?;
    if id > crate::guard::MAX_CLIENT {
        return Err(ProtocolError::Malformed(what));
    }
    Ok(ClientID::new(id))
}

/// A state vector: (client, clock) pairs; nothing may follow.
fn decode_state_vector(buf: &[u8]) -> Result<StateVector, ProtocolError> {
    let mut sv = StateVector::default();
    decode_entries(buf, "sync step 1", |client, clock, _| {
        sv.set_max(client, clock);
        Ok(())
    })?;
    Ok(sv)
}

/// An awareness update: (client, clock, JSON state) triples; nothing may
/// follow.
fn decode_awareness(buf: &[u8]) -> Result<AwarenessUpdate, ProtocolError> {
    let mut clients = std::collections::HashMap::new();
    decode_entries(buf, "awareness", |client, clock, cursor| {
        let json = cursor
            .read_string()
            .map_err(|_| ProtocolError::UndecodableAwareness)?;
        clients.insert(
            client,
            AwarenessUpdateEntry {
                clock,
                json: json.into(),
            },
        );
        Ok(())
    })?;
    Ok(AwarenessUpdate { clients })
}

/// What a state vector and an awareness update are both made of: a count,
/// then that many entries, each a client id and a clock followed by what
/// `entry` reads of it; nothing may follow. `what` names the message in
/// errors.
fn decode_entries(
    buf: &[u8],
    what: &'static str,
    mut entry: impl FnMut(ClientID, u32, &mut Cursor) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let mut cursor = Cursor::new(buf);
    let n: u32 = cursor
        .read_var()
        .map_err(|_| ProtocolError::Malformed(what))?;
    for _ in 0..n {
        let client = client_id(&mut cursor, what)?;
        let clock: u32 = cursor
            .read_var()
            .map_err(|_| ProtocolError::Malformed(what))?;
        entry(client, clock, &mut cursor)?;
    }
    if cursor.has_content() {
        return Err(ProtocolError::Malformed(what));
    }
    Ok(())
}

fn put_var(buf: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        buf.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.put_u8(n as u8);
}

fn sync_message(kind: u8, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(payload.len() + 12);
    buf.put_u8(MSG_SYNC);
    buf.put_u8(kind);
    put_var(&mut buf, payload.len() as u64);
    buf.put_slice(payload);
    buf.freeze()
}

/// Whether a frame the server encoded is a sync step 1 message.
pub fn is_sync_step_1(frame: &[u8]) -> bool {
    frame.starts_with(&[MSG_SYNC, SYNC_STEP_1])
}

pub fn encode_sync_step_1(sv: &StateVector) -> Bytes {
    use yrs::updates::encoder::Encode;
    sync_message(SYNC_STEP_1, &sv.encode_v1())
}

pub fn encode_sync_step_2(update: &[u8]) -> Bytes {
    sync_message(SYNC_STEP_2, update)
}

pub fn encode_update(update: &[u8]) -> Bytes {
    sync_message(SYNC_UPDATE, update)
}

pub fn encode_awareness(update: &AwarenessUpdate) -> Bytes {
    use yrs::updates::encoder::Encode;
    let payload = update.encode_v1();
    let mut buf = BytesMut::with_capacity(payload.len() + 6);
    buf.put_u8(MSG_AWARENESS);
    put_var(&mut buf, payload.len() as u64);
    buf.put_slice(&payload);
    buf.freeze()
}

/// The y-protocols auth message that tells a client it was refused.
pub fn encode_permission_denied(reason: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(reason.len() + 8);
    buf.put_u8(MSG_AUTH);
    buf.put_u8(AUTH_PERMISSION_DENIED);
    put_var(&mut buf, reason.len() as u64);
    buf.put_slice(reason.as_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{
        Doc, GetString, ReadTxn, Text, Transact,
        sync::{Message, SyncMessage},
        updates::encoder::Encode,
    };

    fn sample_update() -> Vec<u8> {
        let doc = Doc::with_client_id(7);
        let text = doc.get_or_insert_text("t");
        text.push(&mut doc.transact_mut(), "hej");
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    #[test]
    fn our_encodings_match_yrs_own() {
        let update = sample_update();
        assert_eq!(
            encode_update(&update).as_ref(),
            Message::Sync(SyncMessage::Update(update.clone())).encode_v1()
        );
        assert_eq!(
            encode_sync_step_2(&update).as_ref(),
            Message::Sync(SyncMessage::SyncStep2(update)).encode_v1()
        );
        let sv = StateVector::default();
        assert_eq!(
            encode_sync_step_1(&sv).as_ref(),
            Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1()
        );
        assert_eq!(
            encode_permission_denied("nej").as_ref(),
            Message::Auth(Some("nej".into())).encode_v1()
        );
    }

    #[test]
    fn an_update_frame_is_shared_not_copied_for_broadcast() {
        let frame = encode_update(&sample_update());
        let mut decoded = decode_frame(&frame).unwrap();
        let Some(Inbound::Update(u)) = decoded.pop() else {
            panic!("expected update")
        };
        assert_eq!(u.broadcast.as_ptr(), frame.as_ptr());
        let doc = Doc::new();
        doc.transact_mut().apply_update(u.update).unwrap();
        assert_eq!(
            doc.get_or_insert_text("t").get_string(&doc.transact()),
            "hej"
        );
    }

    #[test]
    fn sync_step_2_is_rebroadcast_as_an_update_message() {
        let update = sample_update();
        let frame = encode_sync_step_2(&update);
        let Some(Inbound::Update(u)) = decode_frame(&frame).unwrap().pop() else {
            panic!()
        };
        assert!(u.sync_step_2);
        assert_eq!(u.broadcast, encode_update(&update));
        assert_eq!(u.payload.as_ref(), update.as_slice());
    }

    #[test]
    fn truncated_and_padded_frames_are_rejected() {
        let frame = encode_update(&sample_update());
        assert!(decode_frame(&frame.slice(..frame.len() - 1)).is_err());
        let mut padded = frame.to_vec();
        padded.push(0);
        assert!(decode_frame(&Bytes::from(padded)).is_err());
        assert_eq!(
            decode_frame(&Bytes::new()).unwrap_err(),
            ProtocolError::Empty
        );
    }

    #[test]
    fn garbage_update_payload_is_undecodable() {
        let frame = encode_update(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]);
        assert!(decode_frame(&frame).is_err());
    }

    #[test]
    fn unknown_message_types_are_rejected() {
        assert_eq!(
            decode_frame(&Bytes::from_static(&[9, 0])).unwrap_err(),
            ProtocolError::UnknownMessageType(9)
        );
        assert_eq!(
            decode_frame(&Bytes::from_static(&[0, 7, 0])).unwrap_err(),
            ProtocolError::UnknownSyncType(7)
        );
    }

    #[test]
    fn two_messages_in_one_frame_are_both_read() {
        let mut frame = encode_sync_step_1(&StateVector::default()).to_vec();
        frame.push(MSG_QUERY_AWARENESS);
        let decoded = decode_frame(&Bytes::from(frame)).unwrap();
        assert!(matches!(
            decoded[..],
            [Inbound::SyncStep1(_), Inbound::QueryAwareness]
        ));
    }
}
