//! The check: whether a person may apply a client's update (the shortcut
//! for a keystroke, and the whole check for everything else), why not
//! (`Refusal`), and what an accepted update adds to the index (`Accepted`).

use foldhash::HashMap;
use smallvec::SmallVec;

use super::{
    Content, Decoded, Id, Kind, Link, Ownership, Region, SectionIndex,
    index::{Fresh, Loc, Local, NONE_PLACED, PlacedBlocks, RegionId},
};
use crate::{access::Principal, people::UserId};

/// Why an update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("you may not write in {0}")]
    Forbidden(Region),
    #[error("the update refers to items the server has never seen")]
    UnknownItems,
    #[error("the update writes as another client")]
    ForeignClient,
    #[error("the update is malformed")]
    Malformed,
    #[error("the update does not continue its client's history (a gap or an overlap)")]
    Gap,
    #[error("the update carries {0}, which a protocol does not use")]
    Content(&'static str),
    #[error("the update places an item between neighbours that are not next to each other")]
    Neighbours,
    #[error("the update nests content deeper than a protocol allows")]
    TooDeep,
    /// The update builds on changes the server does not have, and they did
    /// not arrive while it waited (see `sync::waiting`).
    #[error("the update builds on earlier changes the server never received ({0})")]
    Unfilled(&'static str),
}

/// What an accepted update adds to the index.
#[derive(Debug, Default, PartialEq)]
pub struct Accepted {
    pub(super) blocks: PlacedBlocks,
    /// Root types the update creates, which the index does not know yet.
    pub(super) fresh: Fresh,
    /// Regions the update writes or deletes in (`regions`).
    pub(super) regions: SmallVec<[RegionId; 2]>,
    /// Client ids the update writes under that nobody held in this room.
    pub new_clients: Vec<u64>,
    /// The update only deletes formatting marks, some of them where the
    /// sender may not write: Yjs tidying up redundant marks after another
    /// client's edit. It is not applied (see `check`).
    pub ignore: bool,
}

impl Accepted {
    /// The regions the update writes or deletes in, for logs and tests.
    pub fn regions<'a>(&'a self, index: &'a SectionIndex) -> Vec<&'a Region> {
        self.regions
            .iter()
            .map(|id| index.regions.get(*id, &self.fresh))
            .collect()
    }
}

impl SectionIndex {
    /// Decides whether `who` may apply `decoded`, a client's update. On
    /// success returns what to record once the update is applied
    /// (`record`). `owner_of` says which person each client id in the room
    /// belongs to: writing under someone else's id is refused. Blocks the
    /// index has seen already are skipped, as yrs skips them when applying.
    pub fn check(
        &self,
        who: &Principal,
        ownership: &Ownership,
        decoded: &Decoded,
        owner_of: impl Fn(u64) -> Option<UserId>,
    ) -> Result<Accepted, Refusal> {
        if let Some(accepted) = self.typed(who, ownership, decoded, &owner_of) {
            // The shortcut decides exactly as the whole check does: the
            // tests, the fuzzer included, run with this comparison on.
            debug_assert_eq!(
                Ok(&accepted),
                self.check_fully(who, ownership, decoded, &owner_of)
                    .as_ref()
            );
            return Ok(accepted);
        }
        self.check_fully(who, ownership, decoded, owner_of)
    }

    /// The shortcut for a keystroke: one block of text, in a sequence,
    /// right where its client's clock stands, beside items the index knows
    /// that are live and in one parent, by the person who holds the client
    /// id, where they may write, deleting nothing. Such a block is placed
    /// beside its left neighbour, as `place` places it; `None` for anything
    /// else (including everything refused), which `check_fully` decides.
    pub(super) fn typed(
        &self,
        who: &Principal,
        ownership: &Ownership,
        decoded: &Decoded,
        owner_of: impl Fn(u64) -> Option<UserId>,
    ) -> Option<Accepted> {
        let [b] = &decoded.blocks[..] else {
            return None;
        };
        let Kind::Item {
            left: Some(left),
            right,
            parent: None,
            keyed: false,
            content: Content::String,
            odd_kind: false,
        } = &b.kind
        else {
            return None;
        };
        if !decoded.deletes.is_empty() || decoded.repeated_client {
            return None;
        }
        let state = self.clients.get(&b.client)?;
        let end = b.clock.checked_add(b.len).filter(|end| *end > b.clock)?;
        // Continuing the client's history exactly, from neighbours it
        // already has (or another client's).
        let earlier = |id: &Id| id.0 != b.client || id.1 < b.clock;
        if b.clock != state.next || !earlier(left) || !right.as_ref().is_none_or(earlier) {
            return None;
        }
        let l = if left.0 == b.client {
            state.items.get(left.1)?
        } else {
            self.loc(*left, &NONE_PLACED)?
        };
        if l.keyed || self.collected(l, &NONE_PLACED) {
            return None;
        }
        if let Some(r) = right {
            let r = self.loc(*r, &NONE_PLACED)?;
            if r.keyed || r.up != l.up || self.collected(r, &NONE_PLACED) {
                return None;
            }
        }
        if owner_of(b.client) != Some(who.user_id)
            || !ownership.may_write(who, self.regions.known(l.region))
        {
            return None;
        }
        let loc = Loc::beside(l, false);
        let link = Link {
            left: Some(*left),
            right: *right,
        };
        Some(Accepted {
            blocks: PlacedBlocks::from_buf([(b.client, b.clock, end, loc, Some(link))]),
            fresh: Fresh::new(),
            regions: SmallVec::from_buf_and_len([loc.region, RegionId::GONE], 1),
            new_clients: Vec::new(),
            ignore: false,
        })
    }

    /// `check`, for every kind of update.
    pub(super) fn check_fully(
        &self,
        who: &Principal,
        ownership: &Ownership,
        decoded: &Decoded,
        owner_of: impl Fn(u64) -> Option<UserId>,
    ) -> Result<Accepted, Refusal> {
        let (blocks, fresh) = self.resolve(decoded, true)?;
        let region = |id| self.regions.get(id, &fresh);
        let mut regions: SmallVec<[RegionId; 2]> = SmallVec::new();
        let mut checked_clients: SmallVec<[u64; 2]> = SmallVec::new();
        let mut new_clients = Vec::new();
        for (client, _, _, loc, _) in &blocks {
            if !checked_clients.contains(client) {
                checked_clients.push(*client);
                match owner_of(*client) {
                    Some(owner) if owner == who.user_id => {}
                    Some(_) => return Err(Refusal::ForeignClient),
                    None => {
                        let written = self
                            .clients
                            .get(client)
                            .map(|c| &c.regions)
                            .filter(|rs| !rs.is_empty());
                        let ok = match written {
                            // Written under before this room knew who: by
                            // the sender, if it wrote where they may write.
                            Some(rs) => rs.iter().any(|r| ownership.may_write(who, region(*r))),
                            // A client id new to the meeting must bring
                            // content of its own: tombstones alone under a
                            // fresh id would only reserve clock space that
                            // its real owner is about to use.
                            None => blocks
                                .iter()
                                .any(|(c, _, _, l, _)| c == client && l.region != RegionId::GONE),
                        };
                        if !ok {
                            return Err(Refusal::ForeignClient);
                        }
                        new_clients.push(*client);
                    }
                }
            }
            // A region already allowed needs no second look.
            if loc.region == RegionId::GONE || regions.contains(&loc.region) {
                continue;
            }
            if !ownership.may_write(who, region(loc.region)) {
                return Err(Refusal::Forbidden(region(loc.region).clone()));
            }
            regions.push(loc.region);
        }
        let mut placed: Local;
        let local = if decoded.deletes.is_empty() || blocks.is_empty() {
            &*NONE_PLACED
        } else {
            placed = HashMap::default();
            for (client, start, end, loc, _) in &blocks {
                placed.entry(*client).or_default().insert(*start, *end, loc);
            }
            &placed
        };
        // A formatting mark deleted where the sender may not write.
        let mut tidied: Option<RegionId> = None;
        for &(client, clock, len) in &decoded.deletes {
            let end = clock.checked_add(len).ok_or(Refusal::Malformed)?;
            // Deleting what is already deleted changes nothing: clients send
            // their whole delete set with every sync.
            let missing = match self.clients.get(&client) {
                Some(c) => c.deleted.missing(clock, end),
                None => vec![(clock, end)],
            };
            for (s, e) in missing {
                for (id, format) in self.regions_between(client, s, e, local)? {
                    if id == RegionId::GONE {
                        continue;
                    }
                    if ownership.may_write(who, region(id)) {
                        if !regions.contains(&id) {
                            regions.push(id);
                        }
                    } else if format {
                        tidied.get_or_insert(id);
                    } else {
                        return Err(Refusal::Forbidden(region(id).clone()));
                    }
                }
            }
        }
        // After applying another client's edit, Yjs deletes formatting marks
        // that have become redundant (a bold start right before a bold end,
        // left by concurrent edits), in every document that receives the
        // edit, as a change of its own. A browser showing a section it may
        // not write sends such a deletion too. Refusing it would disconnect
        // an honest viewer; applying it would let anyone remove formatting
        // anywhere. Such an update (deletions of marks and nothing else) is
        // not applied: the sender's document keeps a few redundant marks
        // fewer than everyone else's, which formats nothing differently.
        if let Some(id) = tidied {
            if !blocks.is_empty() {
                return Err(Refusal::Forbidden(region(id).clone()));
            }
            return Ok(Accepted {
                ignore: true,
                ..Accepted::default()
            });
        }
        Ok(Accepted {
            blocks,
            fresh,
            regions,
            new_clients,
            ignore: false,
        })
    }

    /// The regions of every item in `[s, e)` of `client`, known or new in
    /// this update, each with whether only formatting marks lie there; an
    /// id in neither is unknown.
    fn regions_between(
        &self,
        client: u64,
        s: u32,
        e: u32,
        local: &Local,
    ) -> Result<SmallVec<[(RegionId, bool); 2]>, Refusal> {
        let mut out: SmallVec<[(RegionId, bool); 2]> = SmallVec::new();
        let mut at = s;
        while at < e {
            let (end, loc) = [
                self.clients.get(&client).map(|c| &c.items),
                local.get(&client),
            ]
            .into_iter()
            .flatten()
            .find_map(|r| r.span(at))
            .ok_or(Refusal::UnknownItems)?;
            match out.iter_mut().find(|(r, _)| *r == loc.region) {
                Some((_, format)) => *format &= loc.format,
                None => out.push((loc.region, loc.format)),
            }
            at = end;
        }
        Ok(out)
    }
}
