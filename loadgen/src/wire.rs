//! Wire framing: lib0 variable-length encoding, the y-websocket (y-protocols)
//! message layout and the Hocuspocus layout (document name prefix, auth
//! message, sync-status acks). Byte layouts are documented in README.md.

use std::fmt;

/// lib0 message types shared by y-protocols and Hocuspocus.
pub const MSG_SYNC: u64 = 0;
pub const MSG_AWARENESS: u64 = 1;
pub const MSG_AUTH: u64 = 2;
pub const MSG_QUERY_AWARENESS: u64 = 3;
/// Hocuspocus only (`MessageType` in @hocuspocus/server `types.ts`).
pub const HP_SYNC_REPLY: u64 = 4;
pub const HP_STATELESS: u64 = 5;
pub const HP_BROADCAST_STATELESS: u64 = 6;
pub const HP_CLOSE: u64 = 7;
pub const HP_SYNC_STATUS: u64 = 8;
pub const HP_PING: u64 = 9;
pub const HP_PONG: u64 = 10;

/// y-protocols sync sub-types.
pub const SYNC_STEP_1: u64 = 0;
pub const SYNC_STEP_2: u64 = 1;
pub const SYNC_UPDATE: u64 = 2;

/// y-protocols auth sub-type (the only one y-protocols defines).
pub const YWS_AUTH_PERMISSION_DENIED: u64 = 0;
/// Hocuspocus auth sub-types (`AuthMessageType` in @hocuspocus/common).
pub const HP_AUTH_TOKEN: u64 = 0;
pub const HP_AUTH_PERMISSION_DENIED: u64 = 1;
pub const HP_AUTH_AUTHENTICATED: u64 = 2;

/// What this generator reports as its provider version in the Hocuspocus
/// auth message (the provider sends its package version there).
pub const PROVIDER_VERSION: &str = concat!("protokoll-loadgen/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// y-websocket / y-protocols framing; the document name is the URL path.
    #[value(name = "y-websocket")]
    YWebsocket,
    /// Hocuspocus 4.x framing: every message starts with the document name.
    Hocuspocus,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::YWebsocket => "y-websocket",
            Protocol::Hocuspocus => "hocuspocus",
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed frame: {}", self.0)
    }
}

impl std::error::Error for WireError {}

// ---------------------------------------------------------------------------
// lib0 encoding

pub fn write_var(buf: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        buf.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// lib0 `writeVarUint8Array`: length, then the bytes.
pub fn write_buf(buf: &mut Vec<u8>, bytes: &[u8]) {
    write_var(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// lib0 `writeVarString`: UTF-8 byte length, then the bytes.
pub fn write_string(buf: &mut Vec<u8>, s: &str) {
    write_buf(buf, s.as_bytes());
}

/// A lib0 decoder over a borrowed frame.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn has_content(&self) -> bool {
        self.pos < self.buf.len()
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn read_var(&mut self) -> Result<u64, WireError> {
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(WireError("truncated varuint"))?;
            self.pos += 1;
            if shift >= 64 {
                return Err(WireError("varuint too long"));
            }
            n |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(n);
            }
            shift += 7;
        }
    }

    pub fn read_buf(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.read_var()? as usize;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or(WireError("truncated buffer"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub fn read_string(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.read_buf()?).map_err(|_| WireError("invalid UTF-8"))
    }
}

// ---------------------------------------------------------------------------
// Messages

/// One decoded message from a server, in either framing.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// Sync step 1: the server's state vector (Yjs v1).
    SyncStep1(&'a [u8]),
    /// Sync step 2: everything the server has that we lack (Yjs v1 update).
    SyncStep2(&'a [u8]),
    /// A live update (Yjs v1).
    Update(&'a [u8]),
    Awareness(&'a [u8]),
    QueryAwareness,
    PermissionDenied(String),
    /// Hocuspocus: authentication succeeded; the scope is `read-write` or
    /// `readonly`.
    Authenticated(String),
    /// Hocuspocus: the server asks for the token again (token sync).
    TokenRequest,
    /// Hocuspocus: the ack the server sends for every sync step 2 and update
    /// it handled; `true` if it was applied.
    SyncStatus(bool),
    Stateless(String),
    /// Hocuspocus: the server closes this document's connection.
    Close(String),
    /// Hocuspocus connection-level ping (a lone byte 9, no document name).
    Ping,
    /// A message type this generator does not act on.
    Other(u64),
}

fn decode_sync<'a>(r: &mut Reader<'a>) -> Result<Inbound<'a>, WireError> {
    let kind = r.read_var()?;
    let payload = r.read_buf()?;
    match kind {
        SYNC_STEP_1 => Ok(Inbound::SyncStep1(payload)),
        SYNC_STEP_2 => Ok(Inbound::SyncStep2(payload)),
        SYNC_UPDATE => Ok(Inbound::Update(payload)),
        _ => Err(WireError("unknown sync message type")),
    }
}

/// Encodes and decodes messages for one document in one framing.
#[derive(Debug, Clone)]
pub struct Framing {
    pub protocol: Protocol,
    pub doc: String,
}

impl Framing {
    pub fn new(protocol: Protocol, doc: impl Into<String>) -> Self {
        Framing {
            protocol,
            doc: doc.into(),
        }
    }

    fn start(&self, capacity: usize) -> Vec<u8> {
        let mut buf = Vec::with_capacity(capacity + self.doc.len() + 8);
        if self.protocol == Protocol::Hocuspocus {
            write_string(&mut buf, &self.doc);
        }
        buf
    }

    fn sync(&self, kind: u64, payload: &[u8]) -> Vec<u8> {
        let mut buf = self.start(payload.len() + 8);
        write_var(&mut buf, MSG_SYNC);
        write_var(&mut buf, kind);
        write_buf(&mut buf, payload);
        buf
    }

    /// Sync step 1 carrying a Yjs v1 state vector.
    pub fn sync_step_1(&self, state_vector: &[u8]) -> Vec<u8> {
        self.sync(SYNC_STEP_1, state_vector)
    }

    pub fn sync_step_2(&self, update: &[u8]) -> Vec<u8> {
        self.sync(SYNC_STEP_2, update)
    }

    pub fn update(&self, update: &[u8]) -> Vec<u8> {
        self.sync(SYNC_UPDATE, update)
    }

    pub fn awareness(&self, awareness_update: &[u8]) -> Vec<u8> {
        let mut buf = self.start(awareness_update.len() + 4);
        write_var(&mut buf, MSG_AWARENESS);
        write_buf(&mut buf, awareness_update);
        buf
    }

    /// The message a Hocuspocus provider sends first on every document:
    /// document name, Auth, Token, the token, the provider version. `None`
    /// for y-websocket, which authenticates at the HTTP upgrade instead.
    pub fn auth(&self, token: &str) -> Option<Vec<u8>> {
        if self.protocol != Protocol::Hocuspocus {
            return None;
        }
        let mut buf = self.start(token.len() + PROVIDER_VERSION.len() + 4);
        write_var(&mut buf, MSG_AUTH);
        write_var(&mut buf, HP_AUTH_TOKEN);
        write_string(&mut buf, token);
        write_string(&mut buf, PROVIDER_VERSION);
        Some(buf)
    }

    /// Reply to a Hocuspocus connection-level ping: a lone byte 10.
    pub fn pong() -> Vec<u8> {
        vec![HP_PONG as u8]
    }

    /// Decodes one binary frame from the server.
    pub fn decode<'a>(&self, frame: &'a [u8]) -> Result<Vec<Inbound<'a>>, WireError> {
        match self.protocol {
            Protocol::YWebsocket => decode_y_websocket(frame),
            Protocol::Hocuspocus => decode_hocuspocus(frame).map(|(_, m)| vec![m]),
        }
    }
}

/// A y-websocket frame: one or more `[varuint type][body]` messages.
pub fn decode_y_websocket(frame: &[u8]) -> Result<Vec<Inbound<'_>>, WireError> {
    if frame.is_empty() {
        return Err(WireError("empty frame"));
    }
    let mut r = Reader::new(frame);
    let mut out = Vec::with_capacity(1);
    while r.has_content() {
        let msg = match r.read_var()? {
            MSG_SYNC => decode_sync(&mut r)?,
            MSG_AWARENESS => Inbound::Awareness(r.read_buf()?),
            MSG_AUTH => match r.read_var()? {
                YWS_AUTH_PERMISSION_DENIED => Inbound::PermissionDenied(r.read_string()?.into()),
                other => {
                    // Unknown auth sub-type: its body length is unknown.
                    out.push(Inbound::Other(MSG_AUTH << 8 | other));
                    return Ok(out);
                }
            },
            MSG_QUERY_AWARENESS => Inbound::QueryAwareness,
            other => {
                // Unknown message type: its body cannot be skipped safely.
                out.push(Inbound::Other(other));
                return Ok(out);
            }
        };
        out.push(msg);
    }
    Ok(out)
}

/// A Hocuspocus frame: `[varstring documentName][varuint type][body]`, or
/// the connection-level ping `[9]`. Returns the document name (None for a
/// ping) and the message.
pub fn decode_hocuspocus(frame: &[u8]) -> Result<(Option<&str>, Inbound<'_>), WireError> {
    if frame == [HP_PING as u8] {
        return Ok((None, Inbound::Ping));
    }
    let mut r = Reader::new(frame);
    let doc = r.read_string()?;
    let msg = match r.read_var()? {
        MSG_SYNC | HP_SYNC_REPLY => decode_sync(&mut r)?,
        MSG_AWARENESS => Inbound::Awareness(r.read_buf()?),
        MSG_AUTH => match r.read_var()? {
            HP_AUTH_TOKEN => Inbound::TokenRequest,
            HP_AUTH_PERMISSION_DENIED => Inbound::PermissionDenied(r.read_string()?.into()),
            HP_AUTH_AUTHENTICATED => Inbound::Authenticated(r.read_string()?.into()),
            other => Inbound::Other(MSG_AUTH << 8 | other),
        },
        MSG_QUERY_AWARENESS => Inbound::QueryAwareness,
        HP_STATELESS | HP_BROADCAST_STATELESS => Inbound::Stateless(r.read_string()?.into()),
        HP_CLOSE => Inbound::Close(r.read_string()?.into()),
        // The server writes varUint(0|1); the provider reads it as a lib0
        // varInt, which for 0 and 1 is the same byte.
        HP_SYNC_STATUS => Inbound::SyncStatus(r.read_var()? == 1),
        other => Inbound::Other(other),
    };
    Ok((Some(doc), msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{
        Doc, ReadTxn, StateVector, Text, Transact,
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
    fn varuint_matches_lib0() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0]),
            (1, &[1]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (16384, &[0x80, 0x80, 0x01]),
        ];
        for &(n, bytes) in cases {
            let mut buf = Vec::new();
            write_var(&mut buf, n);
            assert_eq!(buf, bytes, "{n}");
            assert_eq!(Reader::new(bytes).read_var().unwrap(), n);
        }
        assert!(Reader::new(&[0x80]).read_var().is_err());
    }

    #[test]
    fn y_websocket_encodings_match_yrs() {
        let f = Framing::new(Protocol::YWebsocket, "ignored");
        let update = sample_update();
        assert_eq!(
            f.update(&update),
            Message::Sync(SyncMessage::Update(update.clone())).encode_v1()
        );
        assert_eq!(
            f.sync_step_2(&update),
            Message::Sync(SyncMessage::SyncStep2(update.clone())).encode_v1()
        );
        let sv = StateVector::default();
        assert_eq!(
            f.sync_step_1(&sv.encode_v1()),
            Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1()
        );
        assert!(f.auth("x").is_none());
    }

    #[test]
    fn y_websocket_decodes_every_message_in_a_frame() {
        let update = sample_update();
        let mut frame = Message::Sync(SyncMessage::SyncStep1(StateVector::default())).encode_v1();
        frame.extend(Message::Sync(SyncMessage::Update(update.clone())).encode_v1());
        frame.extend(Message::Auth(Some("nope".into())).encode_v1());
        frame.push(3);
        let msgs = decode_y_websocket(&frame).unwrap();
        assert_eq!(
            msgs,
            vec![
                Inbound::SyncStep1(&[0]),
                Inbound::Update(&update),
                Inbound::PermissionDenied("nope".into()),
                Inbound::QueryAwareness,
            ]
        );
        assert!(decode_y_websocket(&frame[..frame.len() - 3]).is_err());
    }

    #[test]
    fn hocuspocus_auth_message_bytes() {
        let f = Framing::new(Protocol::Hocuspocus, "doc");
        let auth = f.auth("tok").unwrap();
        let mut expected = vec![3, b'd', b'o', b'c', 2, 0, 3, b't', b'o', b'k'];
        expected.push(PROVIDER_VERSION.len() as u8);
        expected.extend_from_slice(PROVIDER_VERSION.as_bytes());
        assert_eq!(auth, expected);
    }

    #[test]
    fn hocuspocus_sync_messages_are_prefixed_with_the_document_name() {
        let f = Framing::new(Protocol::Hocuspocus, "doc");
        let update = sample_update();
        let msg = f.update(&update);
        let mut expected = vec![3, b'd', b'o', b'c'];
        expected.extend(Message::Sync(SyncMessage::Update(update.clone())).encode_v1());
        assert_eq!(msg, expected);
        assert_eq!(
            decode_hocuspocus(&msg).unwrap(),
            (Some("doc"), Inbound::Update(&update))
        );
        assert_eq!(f.sync_step_1(&[0]), vec![3, b'd', b'o', b'c', 0, 0, 1, 0]);
    }

    #[test]
    fn hocuspocus_server_messages_decode() {
        // [doc][8 SyncStatus][1]: the per-update ack.
        assert_eq!(
            decode_hocuspocus(&[1, b'x', 8, 1]).unwrap(),
            (Some("x"), Inbound::SyncStatus(true))
        );
        assert_eq!(
            decode_hocuspocus(&[1, b'x', 8, 0]).unwrap().1,
            Inbound::SyncStatus(false)
        );
        // [doc][2 Auth][2 Authenticated]["read-write"]
        let mut auth_ok = vec![1, b'x', 2, 2, 10];
        auth_ok.extend_from_slice(b"read-write");
        assert_eq!(
            decode_hocuspocus(&auth_ok).unwrap().1,
            Inbound::Authenticated("read-write".into())
        );
        // [doc][2 Auth][1 PermissionDenied]["no"]
        assert_eq!(
            decode_hocuspocus(&[1, b'x', 2, 1, 2, b'n', b'o'])
                .unwrap()
                .1,
            Inbound::PermissionDenied("no".into())
        );
        // [doc][2 Auth][0]: token sync request.
        assert_eq!(
            decode_hocuspocus(&[1, b'x', 2, 0]).unwrap().1,
            Inbound::TokenRequest
        );
        // SyncReply (4) carries a sync message like Sync (0).
        assert_eq!(
            decode_hocuspocus(&[1, b'x', 4, 0, 1, 0]).unwrap().1,
            Inbound::SyncStep1(&[0])
        );
        assert_eq!(
            decode_hocuspocus(&[1, b'x', 7, 2, b'b', b'y']).unwrap().1,
            Inbound::Close("by".into())
        );
        assert_eq!(decode_hocuspocus(&[9]).unwrap(), (None, Inbound::Ping));
        assert_eq!(Framing::pong(), vec![10]);
        assert!(decode_hocuspocus(&[5, b'x']).is_err());
    }
}
