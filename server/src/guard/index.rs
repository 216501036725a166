//! The per-meeting index of where every known item lives (`SectionIndex`):
//! its regions, the places of items, what an update builds on that the
//! document lacks, and recording what was accepted or is trusted.

use std::{cell::RefCell, sync::Arc};

// foldhash: several times cheaper than SipHash on the per-update path, and
// still randomly keyed, so clients cannot choose ids that collide.
use foldhash::HashMap;
use smallvec::SmallVec;

use super::{
    Accepted, Decoded, Id, Kind, Link, Parent, Region,
    ranges::{Deleted, LiveTypes, Ranges, Runs},
};

/// What an item sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Up {
    /// Directly in a root type.
    Root,
    /// In the shared type created by this item.
    Item(Id),
    /// Nothing: a garbage-collected range, which has no place and no content.
    Gc,
}

/// A region by its number in the index's table (`Regions`). Items carry
/// the number, not the region: copying and comparing it is free, where
/// the region's name is shared and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RegionId(u32);

impl RegionId {
    pub(super) const GONE: RegionId = RegionId(0);
    /// Numbers from here on are regions first met in the update being
    /// placed, not yet in the table (`Fresh`).
    const FRESH: u32 = 1 << 31;

    fn fresh(&self) -> Option<usize> {
        self.0.checked_sub(Self::FRESH).map(|k| k as usize)
    }
}

/// Root types first met in an update, with their regions, in the order
/// their `RegionId`s number them from `RegionId::FRESH`.
pub(super) type Fresh = SmallVec<[(Arc<str>, Region); 1]>;

/// Every region the index has placed items in, numbered, and the root
/// types' names that lead to them.
#[derive(Debug, Clone)]
pub(super) struct Regions {
    table: Vec<Region>,
    by_root: HashMap<Arc<str>, RegionId>,
}

impl Default for Regions {
    fn default() -> Self {
        Self {
            table: vec![Region::Gone],
            by_root: HashMap::default(),
        }
    }
}

impl Regions {
    pub(super) fn get<'a>(&'a self, id: RegionId, fresh: &'a Fresh) -> &'a Region {
        match id.fresh() {
            Some(k) => &fresh[k].1,
            None => self.known(id),
        }
    }

    /// A region the table holds (every region an item of the index has).
    pub(super) fn known(&self, id: RegionId) -> &Region {
        &self.table[id.0 as usize]
    }

    /// The region of root type `name`: from the table, or numbered among
    /// `fresh`.
    pub(super) fn of_root(&self, name: &Arc<str>, fresh: &RefCell<Fresh>) -> RegionId {
        if let Some(id) = self.by_root.get(&**name) {
            return *id;
        }
        let mut fresh = fresh.borrow_mut();
        let k = match fresh.iter().position(|(n, _)| n == name) {
            Some(k) => k,
            None => {
                fresh.push((name.clone(), Region::of_root(name)));
                fresh.len() - 1
            }
        };
        RegionId(RegionId::FRESH + k as u32)
    }

    /// Adds what `fresh` names to the table: the number each now has.
    fn adopt(&mut self, fresh: &Fresh) -> SmallVec<[RegionId; 1]> {
        if fresh.is_empty() {
            return SmallVec::new();
        }
        fresh
            .iter()
            .map(|(name, region)| {
                if let Some(id) = self.by_root.get(&**name) {
                    return *id;
                }
                // No two root names lead to one region (`Region::of_root`).
                let id = RegionId(self.table.len() as u32);
                self.table.push(region.clone());
                self.by_root.insert(name.clone(), id);
                id
            })
            .collect()
    }
}

/// Where an item lives, and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    pub(super) region: RegionId,
    pub(super) up: Up,
    /// The item creates a shared type (a paragraph, its text) that other
    /// items can live in.
    pub(super) shared: bool,
    /// The item is a map entry's value (an attribute), not in a sequence.
    pub(super) keyed: bool,
    /// The item is a formatting mark (bold on, bold off, ...).
    pub(super) format: bool,
    /// Shared types between the item and its root.
    pub(super) depth: u16,
}

impl Loc {
    pub(super) fn gone() -> Loc {
        Loc {
            region: RegionId::GONE,
            up: Up::Gc,
            shared: false,
            keyed: false,
            format: false,
            depth: 0,
        }
    }

    /// An item placed next to `neighbour`: in the same parent, and under
    /// the same key if the neighbour is a map entry (both libraries copy
    /// the key from the neighbour).
    pub(super) fn beside(neighbour: &Loc, shared: bool) -> Loc {
        Loc {
            region: neighbour.region,
            up: neighbour.up,
            shared,
            keyed: neighbour.keyed,
            format: false,
            depth: neighbour.depth,
        }
    }
}

/// Deepest nesting of shared types a client may create. ProseMirror lists
/// nest a few levels; this bounds every walk up the tree.
pub const MAX_DEPTH: u16 = 48;

/// What the index knows of one client id: kept together, so that looking
/// up a block costs one hash lookup.
#[derive(Debug, Default, Clone)]
pub(super) struct ClientState {
    /// Where its items live, by clock range.
    pub(super) items: Ranges<Loc>,
    /// Its next clock (what the index has seen, which is what the document
    /// has: nothing is ever left pending in it).
    pub(super) next: u32,
    /// Its deleted ranges.
    pub(super) deleted: Deleted,
    /// The regions it has written into (a client writes into one or two).
    pub(super) regions: SmallVec<[RegionId; 2]>,
    /// Its items' neighbours, for `SectionIndex::shows_order`.
    pub(super) runs: Runs,
}

/// The per-meeting index of where every known item lives.
#[derive(Debug, Default, Clone)]
pub struct SectionIndex {
    pub(super) clients: HashMap<u64, ClientState>,
    pub(super) regions: Regions,
    /// Shared types that items were last placed in, live along with every
    /// type up to their root when the index recorded those items: typing
    /// in a paragraph then needs no walk up the tree for each keystroke.
    /// Any recorded deletion forgets them all, so they are live as long as
    /// they are remembered.
    pub(super) live: LiveTypes,
}

/// What an update builds on that the document does not hold yet: for each
/// client id, the clock the document must reach first (`(client, clock)`,
/// at most one entry per client). A keystroke sent before the part of its
/// history the server lacks has one entry.
pub type Missing = SmallVec<[(u64, u32); 1]>;

/// A new block's id range, place and neighbours: (client, start, end,
/// place, link; no link for collected content).
pub(super) type Placed = (u64, u32, u32, Loc, Option<Link>);

/// The blocks of one update; a keystroke has one.
pub(super) type PlacedBlocks = SmallVec<[Placed; 1]>;

/// Blocks of the update being checked, placed already, by client.
pub(super) type Local = HashMap<u64, Ranges<Loc>>;

/// No blocks placed: what a keystroke's block is placed against. Making a
/// map, even an empty one, draws a random hash key.
pub(super) static NONE_PLACED: std::sync::LazyLock<Local> =
    std::sync::LazyLock::new(Local::default);

impl SectionIndex {
    pub(super) fn loc<'a>(&'a self, (client, clock): Id, local: &'a Local) -> Option<&'a Loc> {
        self.clients
            .get(&client)
            .and_then(|c| c.items.get(clock))
            .or_else(|| local.get(&client).and_then(|r| r.get(clock)))
    }

    pub(super) fn is_deleted(&self, (client, clock): Id) -> bool {
        self.clients
            .get(&client)
            .is_some_and(|c| c.deleted.contains(clock))
    }

    pub(super) fn clock(&self, client: u64) -> u32 {
        self.clients.get(&client).map_or(0, |c| c.next)
    }

    /// What `decoded` builds on beyond the document's clocks: blocks that
    /// start ahead of their client's clock, and neighbours, parents and
    /// deleted ranges the document does not hold (and the update does not
    /// bring itself). `None` when nothing is missing, so that the guard's
    /// verdict cannot change by waiting. Decides nothing: whatever waits
    /// is checked as a whole, by `check`, once the document holds what it
    /// builds on. A block straddling its client's clock is not missing
    /// anything (the guard refuses it).
    pub fn missing(&self, decoded: &Decoded) -> Option<Missing> {
        // Each client's run of blocks in this update, by client: (client,
        // start, end). Sorted, so that a hostile update naming many clients
        // costs a search per reference, not a scan.
        let mut own: Vec<(u64, u32, u32)> = Vec::new();
        for b in &decoded.blocks {
            match own.last_mut() {
                Some((c, _, end)) if *c == b.client => *end = (*end).max(b.end()),
                _ => own.push((b.client, b.clock, b.end())),
            }
        }
        own.sort_by_key(|(c, _, _)| *c);
        let own_of = |client: u64| {
            own.binary_search_by_key(&client, |(c, _, _)| *c)
                .ok()
                .map(|i| (own[i].1, own[i].2))
        };
        let mut missing = Missing::new();
        let mut need = |client: u64, clock: u32| {
            if clock <= self.clock(client) {
                return;
            }
            match missing.iter_mut().find(|(c, _)| *c == client) {
                Some((_, at)) => *at = (*at).max(clock),
                None => missing.push((client, clock)),
            }
        };
        for &(client, start, _) in &own {
            need(client, start);
        }
        // An id of the update's own blocks is there once they can be
        // applied, which the run's start already asks for.
        let mut refer = |(client, clock): Id| match own_of(client) {
            Some((start, end)) if (start..end).contains(&clock) => {}
            _ => need(client, clock.saturating_add(1)),
        };
        for b in &decoded.blocks {
            if let Kind::Item {
                left,
                right,
                parent,
                ..
            } = &b.kind
            {
                left.iter().chain(right).for_each(|id| refer(*id));
                if let Some(Parent::Item(id)) = parent {
                    refer(*id);
                }
            }
        }
        for &(client, clock, len) in &decoded.deletes {
            let end = clock.saturating_add(len);
            match own_of(client) {
                Some((_, own_end)) if end <= own_end => {}
                _ => need(client, end),
            }
        }
        // References may have asked for clocks the document already has.
        missing.retain(|(client, clock)| *clock > self.clock(*client));
        (!missing.is_empty()).then_some(missing)
    }

    /// Whether the document now holds everything `missing` named.
    pub fn holds(&self, missing: &Missing) -> bool {
        missing
            .iter()
            .all(|(client, clock)| self.clock(*client) >= *clock)
    }

    /// Whether the document holds `loc`'s item as garbage: a collected
    /// range, or anything inside a deleted shared type (deleting a type
    /// collects everything in it, in yrs and in Yjs alike).
    pub(super) fn collected(&self, loc: &Loc, local: &Local) -> bool {
        let mut up = loc.up;
        for _ in 0..=MAX_DEPTH + 1 {
            match up {
                Up::Root => return false,
                Up::Gc => return true,
                Up::Item(parent) => {
                    if self.live.contains(parent) {
                        return false;
                    }
                    if self.is_deleted(parent) {
                        return true;
                    }
                    match self.loc(parent, local) {
                        Some(l) => up = l.up,
                        None => return true,
                    }
                }
            }
        }
        true
    }

    /// Records the blocks of an accepted update, once it is applied. Its
    /// deletions are recorded from what the document actually deleted
    /// (`record_deletes`), which includes everything inside deleted types.
    pub fn record(&mut self, accepted: &Accepted) {
        self.record_blocks(&accepted.blocks, &accepted.fresh);
    }

    fn record_blocks(&mut self, blocks: &[Placed], fresh: &Fresh) {
        // Root types new to the index get their numbers in the table.
        let adopted = self.regions.adopt(fresh);
        for (client, start, end, loc, link) in blocks {
            let mut loc = *loc;
            if let Some(k) = loc.region.fresh() {
                loc.region = adopted[k];
            }
            let state = self.clients.entry(*client).or_default();
            state.items.insert(*start, *end, &loc);
            if let Some(link) = link {
                state.runs.add(*client, *start, *end, *link);
            }
            state.next = state.next.max(*end);
            if loc.region != RegionId::GONE && !state.regions.contains(&loc.region) {
                state.regions.push(loc.region);
            }
            // Placed in a live type (deletions come after, in
            // `record_deletes`, and forget it again).
            if let Up::Item(parent) = loc.up
                && loc.region != RegionId::GONE
            {
                self.live.remember(parent);
            }
        }
    }

    /// Records deleted ranges (client, clock, len).
    pub fn record_deletes(&mut self, deletes: impl IntoIterator<Item = (u64, u32, u32)>) {
        for (client, clock, len) in deletes {
            self.live.forget();
            self.clients
                .entry(client)
                .or_default()
                .deleted
                .add(clock, clock.saturating_add(len));
        }
    }

    /// Adds a trusted update (stored history, the server's own edits)
    /// without checking permissions, placing its blocks as yrs does.
    pub fn learn(&mut self, decoded: &Decoded) {
        // Trusted history is placed, never refused; the only errors are
        // overflows that decoding rules out already.
        let (blocks, fresh) = self.resolve(decoded, false).unwrap_or_default();
        self.record_blocks(&blocks, &fresh);
        self.record_deletes(decoded.deletes.iter().copied());
    }
}
