//! Reads a Yjs v1 update's structure without integrating it: for every
//! block, its id range and where it attaches (a root type by name, a parent
//! item, or a neighbouring item), and the delete set. Uses yrs' public
//! decoder and content types, so the wire format is yrs' own.

use std::sync::Arc;

use yrs::{
    block::{
        BLOCK_GC_REF_NUMBER, BLOCK_SKIP_REF_NUMBER, HAS_ORIGIN, HAS_PARENT_SUB, HAS_RIGHT_ORIGIN,
        ItemContent,
    },
    encoding::read::Read,
    updates::decoder::{Decoder, DecoderV1},
};

/// Where a block attaches to the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// A root type, by name.
    Root(Arc<str>),
    /// Inside the type created by this item.
    Parent(u64, u32),
    /// Next to this item (left or right origin): in the same parent.
    Beside(u64, u32),
    /// A garbage-collected range: no content, no parent.
    Gc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub client: u64,
    pub clock: u32,
    pub len: u32,
    pub attach: Attach,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub blocks: Vec<Block>,
    /// (client, clock, len) ranges the update deletes.
    pub deletes: Vec<(u64, u32, u32)>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn utf16_length_matches_the_standard_library() {
        for s in ["", "abc", "åäö", "€", "𝄞 musik", "a𝄞b€c"] {
            let expected: usize = s.chars().map(char::len_utf16).sum();
            assert_eq!(super::utf16_len(s.as_bytes()) as usize, expected, "{s}");
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed update")]
pub struct Malformed;

/// Upper bound on counts read from the wire before allocating for them.
const MAX_COUNT: u32 = 1 << 24;

/// The clock length of an item's content, read without keeping it. Text,
/// the common case, is measured in place; rarer kinds are decoded by yrs.
fn content_len(d: &mut DecoderV1, info: u8) -> Result<u32, Malformed> {
    const DELETED: u8 = 1;
    const STRING: u8 = 4;
    const EMBED: u8 = 5;
    const FORMAT: u8 = 6;
    match info & 0b1111 {
        DELETED => d.read_len().map_err(|_| Malformed),
        STRING => {
            // A string is a length-prefixed buffer; yrs has validated the
            // UTF-8 already when it decoded the same update.
            let bytes = d.read_buf().map_err(|_| Malformed)?;
            Ok(utf16_len(bytes))
        }
        EMBED => {
            d.read_buf().map_err(|_| Malformed)?;
            Ok(1)
        }
        FORMAT => {
            d.read_buf().map_err(|_| Malformed)?;
            d.read_buf().map_err(|_| Malformed)?;
            Ok(1)
        }
        _ => Ok(ItemContent::decode(d, info)
            .map_err(|_| Malformed)?
            .len_utf16()),
    }
}

/// Yjs measures text in UTF-16 code units: one per UTF-8 leading byte, two
/// for characters outside the BMP (4-byte sequences). Counted branch-free
/// over the bytes, which the compiler vectorises: a 20 KB paste costs about
/// as much as copying it.
fn utf16_len(utf8: &[u8]) -> u32 {
    utf8.iter()
        .map(|&b| u32::from(b & 0xC0 != 0x80) + u32::from(b >= 0xF0))
        .sum()
}

pub fn decode(update: &[u8]) -> Result<Decoded, Malformed> {
    let mut d = DecoderV1::from(update);
    let mut out = Decoded::default();
    let clients: u32 = d.read_var().map_err(|_| Malformed)?;
    if clients > MAX_COUNT {
        return Err(Malformed);
    }
    for _ in 0..clients {
        let count: u32 = d.read_var().map_err(|_| Malformed)?;
        let client = d.read_client().map_err(|_| Malformed)?.get();
        let mut clock: u32 = d.read_var().map_err(|_| Malformed)?;
        if count > MAX_COUNT {
            return Err(Malformed);
        }
        for _ in 0..count {
            let info = d.read_info().map_err(|_| Malformed)?;
            let (len, attach) = match info {
                BLOCK_SKIP_REF_NUMBER => {
                    let len: u32 = d.read_var().map_err(|_| Malformed)?;
                    clock = clock.checked_add(len).ok_or(Malformed)?;
                    continue;
                }
                BLOCK_GC_REF_NUMBER => (d.read_len().map_err(|_| Malformed)?, Attach::Gc),
                info => {
                    let has_origin = info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) != 0;
                    let left = if info & HAS_ORIGIN != 0 {
                        Some(d.read_left_id().map_err(|_| Malformed)?)
                    } else {
                        None
                    };
                    let right = if info & HAS_RIGHT_ORIGIN != 0 {
                        Some(d.read_right_id().map_err(|_| Malformed)?)
                    } else {
                        None
                    };
                    let attach = if has_origin {
                        let id = left.or(right).expect("an origin was read");
                        Attach::Beside(id.client.get(), id.clock)
                    } else if d.read_parent_info().map_err(|_| Malformed)? {
                        let name: Arc<str> = d.read_string().map_err(|_| Malformed)?.into();
                        Attach::Root(name)
                    } else {
                        let id = d.read_left_id().map_err(|_| Malformed)?;
                        Attach::Parent(id.client.get(), id.clock)
                    };
                    if !has_origin && info & HAS_PARENT_SUB != 0 {
                        d.read_string().map_err(|_| Malformed)?;
                    }
                    (content_len(&mut d, info)?, attach)
                }
            };
            if len == 0 {
                return Err(Malformed);
            }
            out.blocks.push(Block {
                client,
                clock,
                len,
                attach,
            });
            clock = clock.checked_add(len).ok_or(Malformed)?;
        }
    }
    let ds_clients: u32 = d.read_var().map_err(|_| Malformed)?;
    if ds_clients > MAX_COUNT {
        return Err(Malformed);
    }
    for _ in 0..ds_clients {
        d.reset_ds_cur_val();
        let client: u64 = d.read_var().map_err(|_| Malformed)?;
        let ranges: u32 = d.read_var().map_err(|_| Malformed)?;
        if ranges > MAX_COUNT {
            return Err(Malformed);
        }
        for _ in 0..ranges {
            let clock = d.read_ds_clock().map_err(|_| Malformed)?;
            let len = d.read_ds_len().map_err(|_| Malformed)?;
            if len > 0 {
                out.deletes.push((client, clock, len));
            }
        }
    }
    Ok(out)
}
