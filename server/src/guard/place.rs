//! Where an update's new blocks go, by the rules yrs and Yjs integrate them
//! by (root name, parent type, neighbours, garbage collection); for a
//! client's update, refusing what the two libraries would place differently,
//! could not place, or what a protocol does not hold.

use std::cell::RefCell;

use foldhash::HashMap;
use smallvec::SmallVec;

use super::{
    Block, Content, Decoded, Id, Kind, Link, Parent, Refusal, SectionIndex, Shared,
    index::{Fresh, Loc, Local, MAX_DEPTH, NONE_PLACED, Placed, PlacedBlocks, Up},
};

/// The content kinds a client may send: text and the shared types an
/// editor builds a section from (the editor's elements, their text,
/// attributes and formatting), and tombstones. An element the editor does
/// not know would be deleted again by every browser that shows the section
/// (y-prosemirror removes what its schema cannot hold), as a write in a
/// section those browsers' users may not write. JSON content is read differently by yrs
/// (0.28) and Yjs; embeds, binary, sub-documents and other types have no
/// place in a protocol.
fn content_refusal(content: Content, odd_kind: bool) -> Option<Refusal> {
    if odd_kind {
        return Some(Refusal::Content("an unknown content kind"));
    }
    match content {
        Content::Deleted | Content::String | Content::Format | Content::Any => None,
        Content::Type(Shared::XmlElement | Shared::XmlText) => None,
        Content::Type(Shared::Array | Shared::Map | Shared::Text) => {
            Some(Refusal::Content("a map, array or plain text type"))
        }
        Content::Type(Shared::OtherElement) => Some(Refusal::Content(
            "an element the protocol's editor does not have",
        )),
        Content::Type(_) => Some(Refusal::Content(
            "an XML fragment, hook or sub-document type",
        )),
        Content::Json => Some(Refusal::Content("JSON content")),
        Content::Binary => Some(Refusal::Content("binary content")),
        Content::Embed => Some(Refusal::Content("an embed")),
        Content::Doc => Some(Refusal::Content("a sub-document")),
    }
}

/// What Yjs writes as a map entry's (an attribute's) value: one value, or
/// a tombstone. Text or formatting under a key, or several values as one
/// entry, are split by yrs and Yjs differently.
fn map_value(kind: &Kind, len: u32) -> bool {
    match kind {
        Kind::Item { content, .. } => match content {
            Content::Deleted => true,
            Content::String | Content::Format => false,
            _ => len == 1,
        },
        _ => true,
    }
}

impl SectionIndex {
    /// Where a block goes when it is integrated, by the rules yrs applies
    /// (`Update::integrate`) and Yjs applies (`Item.getMissing`): by root
    /// name; into its parent type unless that is deleted or collected; or
    /// beside its neighbours, the left one first, and collected if a
    /// neighbour is. `Ok(None)` means it depends on a block of this update
    /// that has no place yet. `strict` (a client's update) refuses what the
    /// two libraries would place differently, or what yrs would leave
    /// pending; otherwise (trusted history) yrs' reading is followed.
    fn place(
        &self,
        b: &Block,
        local: &Local,
        fresh: &RefCell<Fresh>,
        strict: bool,
    ) -> Result<Option<Loc>, Refusal> {
        let Kind::Item {
            left,
            right,
            parent,
            content,
            keyed,
            ..
        } = &b.kind
        else {
            return Ok(Some(Loc::gone()));
        };
        let shared = matches!(content, Content::Type(_));
        // yrs integrates a client's blocks in clock order: one that needs a
        // later block of its own client is left pending.
        let usable = |id: &Id| {
            if strict && id.0 == b.client && id.1 >= b.clock {
                Err(Refusal::UnknownItems)
            } else {
                Ok(())
            }
        };
        if left.is_none() && right.is_none() {
            return match parent {
                Some(Parent::Root(name)) => Ok(Some(Loc {
                    region: self.regions.of_root(name, fresh),
                    up: Up::Root,
                    shared,
                    keyed: *keyed,
                    format: false,
                    depth: 0,
                })),
                Some(Parent::Item(p)) => {
                    usable(p)?;
                    let Some(pl) = self.loc(*p, local) else {
                        return Ok(None);
                    };
                    if !pl.shared {
                        // yrs fails on such an update half-way; Yjs collects it.
                        return if strict {
                            Err(Refusal::Malformed)
                        } else {
                            Ok(Some(Loc::gone()))
                        };
                    }
                    if !self.live.contains(*p) && (self.is_deleted(*p) || self.collected(pl, local))
                    {
                        return Ok(Some(Loc::gone()));
                    }
                    let depth = pl.depth + 1;
                    if strict && depth > MAX_DEPTH {
                        return Err(Refusal::TooDeep);
                    }
                    Ok(Some(Loc {
                        region: pl.region,
                        up: Up::Item(*p),
                        shared,
                        keyed: *keyed,
                        format: false,
                        depth,
                    }))
                }
                None => Err(Refusal::Malformed),
            };
        }
        let mut sides: [Option<(&Loc, bool)>; 2] = [None, None];
        for (i, id) in [left, right].into_iter().enumerate() {
            if let Some(id) = id {
                usable(id)?;
                let Some(loc) = self.loc(*id, local) else {
                    return Ok(None);
                };
                // Whether an item is collected depends only on what it sits
                // in: neighbours in one parent (the usual case) need one walk.
                let collected = match sides[0] {
                    Some((l, c)) if i == 1 && l.up == loc.up => c,
                    _ => self.collected(loc, local),
                };
                sides[i] = Some((loc, collected));
            }
        }
        let [l, r] = sides;
        match (l, r) {
            // Both libraries collect an item whose neighbours are collected.
            (Some((_, true)), None | Some((_, true))) | (None, Some((_, true))) => {
                Ok(Some(Loc::gone()))
            }
            // Yjs collects it; yrs places it beside the live one.
            (Some((live, false)), Some((_, true))) | (Some((_, true)), Some((live, false))) => {
                if strict {
                    Err(Refusal::Neighbours)
                } else {
                    Ok(Some(Loc::beside(live, shared)))
                }
            }
            (Some((l, false)), Some((r, false))) => {
                // Honest neighbours are adjacent in one sequence. Ones in
                // different types send the libraries' conflict resolution
                // walking different lists, to different results.
                if strict && (l.up != r.up || l.keyed || r.keyed) {
                    return Err(Refusal::Neighbours);
                }
                Ok(Some(Loc::beside(l, shared)))
            }
            (Some((n, false)), None) | (None, Some((n, false))) => Ok(Some(Loc::beside(n, shared))),
            (None, None) => unreachable!("an origin was given"),
        }
    }

    /// Places block `b` from clock `start` on (where the document's
    /// knowledge of its client ends): its id range, place and neighbours,
    /// or `None` while it depends on a block of the update not yet placed.
    fn settle(
        &self,
        b: &Block,
        start: u32,
        local: &Local,
        fresh: &RefCell<Fresh>,
        strict: bool,
    ) -> Result<Option<Placed>, Refusal> {
        let Some(mut loc) = self.place(b, local, fresh, strict)? else {
            return Ok(None);
        };
        if strict && loc.keyed && !map_value(&b.kind, b.len) {
            return Err(Refusal::Content("text or formatting as an attribute value"));
        }
        loc.format = matches!(
            b.kind,
            Kind::Item {
                content: Content::Format,
                ..
            }
        );
        let link = match &b.kind {
            // yrs trims a block the document holds the start of: what is
            // left follows its own first part.
            Kind::Item { right, .. } if start > b.clock => Some(Link {
                left: Some((b.client, start - 1)),
                right: *right,
            }),
            Kind::Item { left, right, .. } => Some(Link {
                left: *left,
                right: *right,
            }),
            _ => None,
        };
        Ok(Some((b.client, start, b.clock + b.len, loc, link)))
    }

    /// Finds the place of every block the server does not have yet. In a
    /// client's update (`strict`), each client's new blocks must continue
    /// exactly where the document's clock for that client stands, every
    /// client appears once, and nothing may be skipped. Blocks may depend
    /// on blocks later in the same update, so this repeats until nothing
    /// more resolves; what never resolves refers to unknown items.
    pub(super) fn resolve(
        &self,
        decoded: &Decoded,
        strict: bool,
    ) -> Result<(PlacedBlocks, Fresh), Refusal> {
        // yrs appends a repeated client's blocks, Yjs replaces them: refuse
        // what the two read differently.
        if strict && decoded.repeated_client {
            return Err(Refusal::Malformed);
        }
        let mut pending: SmallVec<[(&Block, u32); 4]> = SmallVec::new();
        let mut expected: Option<(u64, u32)> = None;
        for b in &decoded.blocks {
            let end = b.clock.checked_add(b.len).ok_or(Refusal::Malformed)?;
            if expected.is_none_or(|(c, _)| c != b.client) {
                expected = Some((b.client, self.clock(b.client)));
            }
            let Some((_, have)) = expected.as_mut() else {
                unreachable!("set above")
            };
            if matches!(b.kind, Kind::Skip) {
                if strict {
                    return Err(Refusal::Gap);
                }
                continue;
            }
            if end <= *have {
                continue;
            }
            if strict && b.clock != *have {
                // Ahead of the clock: yrs integrates it at once and fills
                // the hole later, unchecked. Straddling it: yrs trims the
                // block and attaches it to its own known start, wherever
                // the block says it goes.
                return Err(Refusal::Gap);
            }
            if strict
                && let Kind::Item {
                    content, odd_kind, ..
                } = &b.kind
                && let Some(refusal) = content_refusal(*content, *odd_kind)
            {
                return Err(refusal);
            }
            pending.push((b, b.clock.max(*have)));
            *have = end;
        }
        // A lone block (a keystroke) is placed at once.
        let fresh = RefCell::new(Fresh::new());
        if let [(b, start)] = pending[..] {
            let placed = match self.settle(b, start, &NONE_PLACED, &fresh, strict)? {
                Some(placed) => placed,
                None if strict => return Err(Refusal::UnknownItems),
                None => (b.client, start, b.clock + b.len, Loc::gone(), None),
            };
            let mut resolved = PlacedBlocks::new();
            resolved.push(placed);
            return Ok((resolved, fresh.into_inner()));
        }
        // Blocks placed so far, for the later blocks of the update that
        // refer to them.
        let mut local: Local = HashMap::default();
        let mut resolved = PlacedBlocks::with_capacity(pending.len());
        while !pending.is_empty() {
            let before = pending.len();
            let mut failure = None;
            pending.retain(|&mut (b, start)| {
                if failure.is_some() {
                    return true;
                }
                match self.settle(b, start, &local, &fresh, strict) {
                    Ok(Some(placed)) => {
                        let (client, start, end, loc, _) = &placed;
                        local.entry(*client).or_default().insert(*start, *end, loc);
                        resolved.push(placed);
                        false
                    }
                    Ok(None) => true,
                    Err(refusal) => {
                        failure = Some(refusal);
                        true
                    }
                }
            });
            if let Some(refusal) = failure {
                return Err(refusal);
            }
            if pending.len() == before {
                if strict {
                    return Err(Refusal::UnknownItems);
                }
                for (b, start) in pending.drain(..) {
                    resolved.push((b.client, start, b.clock + b.len, Loc::gone(), None));
                }
            }
        }
        Ok((resolved, fresh.into_inner()))
    }
}
