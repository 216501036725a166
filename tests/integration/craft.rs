//! Hand-encoded Yjs v1 updates: any structure the wire format can carry,
//! including what no Yjs API produces (clock gaps, skips, origins on
//! collected items, content kinds and info bits at will), for attacking the
//! section guard and for the differential fuzzer.

use yrs::{
    encoding::write::Write,
    updates::encoder::{Encoder, EncoderV1},
};

pub type Id = (u64, u32);

#[derive(Debug, Clone)]
pub enum Parent {
    Root(String),
    Item(Id),
}

#[derive(Debug, Clone)]
pub enum Content {
    Deleted(u32),
    String(String),
    /// JSON values as Yjs writes them: a count, then that many strings.
    Json(Vec<String>),
    Binary(Vec<u8>),
    Embed(String),
    Format(String, String),
    /// A type by its Yjs number (3 = XmlElement with a name, 6 = XmlText,
    /// 0 Array, 1 Map, 2 Text, 4 XmlFragment, 5 XmlHook).
    Type(u8, Option<String>),
    /// `Any` values, written as lib0 strings.
    AnyStrings(Vec<String>),
}

impl Content {
    fn kind(&self) -> u8 {
        match self {
            Content::Deleted(_) => 1,
            Content::Json(_) => 2,
            Content::Binary(_) => 3,
            Content::String(_) => 4,
            Content::Embed(_) => 5,
            Content::Format(..) => 6,
            Content::Type(..) => 7,
            Content::AnyStrings(_) => 8,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Block {
    Gc(u32),
    Skip(u32),
    Item {
        left: Option<Id>,
        right: Option<Id>,
        /// Written only when there is no origin (as the format requires).
        parent: Option<Parent>,
        key: Option<String>,
        content: Content,
        /// Extra bits or'ed into the info byte (e.g. 0x10).
        extra_info: u8,
    },
}

impl Block {
    /// An item in a root type, with no neighbours.
    pub fn in_root(root: &str, content: Content) -> Block {
        Block::Item {
            left: None,
            right: None,
            parent: Some(Parent::Root(root.into())),
            key: None,
            content,
            extra_info: 0,
        }
    }

    pub fn in_item(parent: Id, content: Content) -> Block {
        Block::Item {
            left: None,
            right: None,
            parent: Some(Parent::Item(parent)),
            key: None,
            content,
            extra_info: 0,
        }
    }

    pub fn beside(left: Option<Id>, right: Option<Id>, content: Content) -> Block {
        Block::Item {
            left,
            right,
            parent: None,
            key: None,
            content,
            extra_info: 0,
        }
    }
}

/// One client's run of blocks, starting at `clock`.
#[derive(Debug, Clone)]
pub struct Run {
    pub client: u64,
    pub clock: u32,
    pub blocks: Vec<Block>,
}

/// Encodes runs (in the given order) and a delete set of (client, clock,
/// len) ranges, followed by `trailing` bytes.
pub fn encode(runs: &[Run], deletes: &[(u64, u32, u32)], trailing: &[u8]) -> Vec<u8> {
    let mut e = EncoderV1::new();
    e.write_var(runs.len() as u32);
    for run in runs {
        e.write_var(run.blocks.len() as u32);
        // As v1 writes a client id, unchecked (ids beyond 53 bits too).
        e.write_var(run.client);
        e.write_var(run.clock);
        for block in &run.blocks {
            write_block(&mut e, block);
        }
    }
    let mut by_client: Vec<(u64, Vec<(u32, u32)>)> = Vec::new();
    for &(client, clock, len) in deletes {
        match by_client.iter_mut().find(|(c, _)| *c == client) {
            Some((_, ranges)) => ranges.push((clock, len)),
            None => by_client.push((client, vec![(clock, len)])),
        }
    }
    e.write_var(by_client.len() as u32);
    for (client, ranges) in by_client {
        e.reset_ds_cur_val();
        e.write_var(client);
        e.write_var(ranges.len() as u32);
        for (clock, len) in ranges {
            e.write_ds_clock(clock);
            e.write_ds_len(len);
        }
    }
    let mut out = e.to_vec();
    out.extend_from_slice(trailing);
    out
}

/// An id as v1 writes left, right and parent ids: client, then clock.
fn write_id(e: &mut EncoderV1, (client, clock): Id) {
    e.write_var(client);
    e.write_var(clock);
}

fn write_block(e: &mut EncoderV1, block: &Block) {
    match block {
        Block::Gc(len) => {
            e.write_info(0);
            e.write_len(*len);
        }
        Block::Skip(len) => {
            e.write_info(10);
            e.write_var(*len);
        }
        Block::Item {
            left,
            right,
            parent,
            key,
            content,
            extra_info,
        } => {
            let named = left.is_none() && right.is_none();
            let mut info = content.kind() | extra_info;
            if left.is_some() {
                info |= 0x80;
            }
            if right.is_some() {
                info |= 0x40;
            }
            if named && key.is_some() {
                info |= 0x20;
            }
            e.write_info(info);
            if let Some(id) = left {
                write_id(e, *id);
            }
            if let Some(id) = right {
                write_id(e, *id);
            }
            if named {
                match parent {
                    Some(Parent::Root(name)) => {
                        e.write_parent_info(true);
                        e.write_string(name);
                    }
                    Some(Parent::Item(id)) => {
                        e.write_parent_info(false);
                        write_id(e, *id);
                    }
                    None => {
                        e.write_parent_info(true);
                        e.write_string("");
                    }
                }
                if let Some(key) = key {
                    e.write_string(key);
                }
            }
            write_content(e, content);
        }
    }
}

fn write_content(e: &mut EncoderV1, content: &Content) {
    match content {
        Content::Deleted(len) => e.write_len(*len),
        Content::String(s) => e.write_string(s),
        Content::Json(values) => {
            e.write_len(values.len() as u32);
            for v in values {
                e.write_string(v);
            }
        }
        Content::Binary(bytes) => e.write_buf(bytes),
        Content::Embed(json) => e.write_string(json),
        Content::Format(key, json) => {
            e.write_key(key);
            e.write_string(json);
        }
        Content::Type(type_ref, name) => {
            e.write_type_ref(*type_ref);
            if let Some(name) = name {
                e.write_key(name);
            }
        }
        Content::AnyStrings(values) => {
            e.write_len(values.len() as u32);
            for v in values {
                // lib0 `Any` tag 119: a string.
                e.write_u8(119);
                e.write_string(v);
            }
        }
    }
}
