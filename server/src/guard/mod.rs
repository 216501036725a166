//! The section guard: each agency writes only its own section, checked on
//! every update before it is applied.
//!
//! The guard keeps, per meeting, an index from item id ranges (client,
//! clock) to where those items live: the region of the document (a
//! section, the agenda, another root), the shared type they sit in, and
//! whether they create one. It is built from the stored history when a room
//! opens and extended with every accepted update. An incoming update is
//! decoded (not applied); each new block is placed by the very rules yrs
//! and Yjs integrate it by (root name, parent type, neighbours, and what
//! garbage collection has left of them), and every deleted range is looked
//! up. The update is accepted only if the sender may write every region it
//! touches, and only if yrs and Yjs would both integrate all of it, in the
//! same places: no clock gaps, no dependencies on unknown or later items,
//! no content kinds the schema does not use. It is refused as a whole
//! otherwise. See `docs/section-guard.md`.
//!
//! This module must never apply anything to a document: it only decides.

pub mod decode;

use std::{cell::RefCell, collections::BTreeMap, sync::Arc};

// foldhash: several times cheaper than SipHash on the per-update path, and
// still randomly keyed, so clients cannot choose ids that collide.
use foldhash::HashMap;
use smallvec::SmallVec;

pub use decode::{
    Block, Content, Decoded, Id, Kind, MAX_CLIENT, Malformed, Parent, Shared, decode,
};

use crate::{
    access::Principal,
    document::{AGENDA, SECTION_PREFIX},
    people::{Role, SectionOwner, UserId},
};

/// Where an item lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Region {
    Section(Arc<str>),
    Agenda,
    /// A root that is not part of the schema.
    Other(Arc<str>),
    /// Garbage-collected content: nothing can attach to it.
    Gone,
}

impl Region {
    fn of_root(name: &str) -> Region {
        if let Some(id) = name.strip_prefix(SECTION_PREFIX) {
            Region::Section(id.into())
        } else if name == AGENDA {
            Region::Agenda
        } else {
            Region::Other(name.into())
        }
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Region::Section(id) => write!(f, "section {id}"),
            Region::Agenda => f.write_str("the agenda"),
            Region::Other(name) => write!(f, "root type {name:?}"),
            Region::Gone => f.write_str("deleted content"),
        }
    }
}

/// Who owns which section, as the agenda says right now.
#[derive(Debug, Clone, Default)]
pub struct Ownership {
    pub sections: HashMap<Arc<str>, SectionOwner>,
}

impl Ownership {
    pub fn from_sections(sections: Vec<crate::people::Section>) -> Self {
        Self {
            sections: sections
                .into_iter()
                .map(|s| (Arc::from(s.id.as_str()), s.owner))
                .collect(),
        }
    }

    /// Whether `who` may write in `region`. Ownership alone grants writing:
    /// an agency's participants write its sections, a named user theirs, the
    /// secretary the secretary's. Verifiers (justerare) and non-participants
    /// write nothing, and nobody writes the agenda (the server mirrors it)
    /// or roots outside the schema.
    pub fn may_write(&self, who: &Principal, region: &Region) -> bool {
        let Region::Section(id) = region else {
            return false;
        };
        let Some(role) = who.role else { return false };
        if role == Role::Justerare {
            return false;
        }
        match self.sections.get(id) {
            Some(SectionOwner::Agency { agency_id }) => who.agency_id == Some(*agency_id),
            Some(SectionOwner::User { user_id }) => who.user_id == *user_id,
            Some(SectionOwner::Secretary) => role == Role::Secretary,
            None => false,
        }
    }
}

/// Non-overlapping id ranges of one client, sorted by start clock.
///
/// A sorted vector rather than a search tree: a client's items only ever
/// arrive beyond what is known of it (an update's blocks start at the
/// client's clock), so a new range goes at the end, or among the few
/// ranges of the same update when its blocks resolve out of order; and
/// the range looked up most (the one a keystroke's left neighbour is in,
/// or its own run when recording it) is the last one, checked first.
#[derive(Debug, Clone)]
struct Ranges<T> {
    by_start: Vec<(u32, u32, T)>,
}

impl<T> Default for Ranges<T> {
    fn default() -> Self {
        Self {
            by_start: Vec::new(),
        }
    }
}

impl<T> Ranges<T> {
    /// The index of the range starting at or before `clock`, if any.
    fn at_or_before(&self, clock: u32) -> Option<usize> {
        match self.by_start.last() {
            None => None,
            Some((start, _, _)) if *start <= clock => Some(self.by_start.len() - 1),
            Some(_) => self
                .by_start
                .partition_point(|(start, _, _)| *start <= clock)
                .checked_sub(1),
        }
    }

    /// The range containing `clock`: its start, end and value.
    fn range(&self, clock: u32) -> Option<(u32, u32, &T)> {
        let (start, end, value) = &self.by_start[self.at_or_before(clock)?];
        (clock < *end).then_some((*start, *end, value))
    }

    /// Adds `[start, end)`, which overlaps no range, or extends the range
    /// that ends at `start` if `extends` says its value continues there
    /// (typing, one character after the other, allocates nothing).
    fn add(&mut self, start: u32, end: u32, value: T, extends: impl FnOnce(&T, &T) -> bool) {
        let at = match self.by_start.last() {
            Some((s, _, _)) if *s < start => self.by_start.len(),
            None => 0,
            Some(_) => self.by_start.partition_point(|(s, _, _)| *s < start),
        };
        if let Some((_, e, v)) = at.checked_sub(1).map(|i| &mut self.by_start[i])
            && *e == start
            && extends(v, &value)
        {
            *e = end;
            return;
        }
        self.by_start.insert(at, (start, end, value));
    }
}

impl<T: Clone + PartialEq> Ranges<T> {
    fn get(&self, clock: u32) -> Option<&T> {
        self.range(clock).map(|(_, _, value)| value)
    }

    /// The range containing `clock`: its end and value.
    fn span(&self, clock: u32) -> Option<(u32, &T)> {
        self.range(clock).map(|(_, end, value)| (end, value))
    }

    fn insert(&mut self, start: u32, end: u32, value: &T) {
        // Blocks are only ever added beyond what is known, so ranges never
        // overlap; merging with an adjacent equal range keeps them few.
        self.add(start, end, value.clone(), |a, b| a == b);
    }
}

/// The neighbours a run of one client's items was inserted between: the
/// first item's left origin is `left`, every later item's is the item before
/// it, and all have `right` as right origin (what yrs squashes into one item
/// has exactly this shape). Yjs and yrs place every item right of its left
/// origin and left of its right origin, so the items of a run stand in
/// clock order, and the links lead from an item to items that stand to its
/// left or right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    left: Option<Id>,
    right: Option<Id>,
}

/// One client's runs, by start clock.
#[derive(Debug, Default, Clone)]
struct Runs {
    runs: Ranges<Link>,
}

impl Runs {
    fn add(&mut self, client: u64, start: u32, end: u32, link: Link) {
        // Typing, one character after the other, extends one run.
        self.runs.add(start, end, link, |run, link| {
            link.left == Some((client, start - 1)) && run.right == link.right
        });
    }

    /// The run holding `clock`: its start, end and neighbours.
    fn find(&self, clock: u32) -> Option<(u32, u32, Link)> {
        self.runs
            .range(clock)
            .map(|(start, end, link)| (start, end, *link))
    }
}

/// How many links `shows_order` follows on each side before it gives up.
const ORDER_STEPS: usize = 32;

/// Deleted id ranges of one client, merged.
#[derive(Debug, Default, Clone)]
struct Deleted {
    by_start: BTreeMap<u32, u32>,
}

impl Deleted {
    fn add(&mut self, start: u32, end: u32) {
        let mut start = start;
        let mut end = end;
        // The stored ranges are disjoint and not touching, so their ends
        // grow with their starts: walk back from the last range starting at
        // or before `end` and stop at the first that ends before `start`.
        // (Filtering the whole `..=end` range instead made loading a long
        // editing history quadratic: 0.9 s for the B4 trace's deletions.)
        let overlapping: Vec<u32> = self
            .by_start
            .range(..=end)
            .rev()
            .take_while(|(_, e)| **e >= start)
            .map(|(s, _)| *s)
            .collect();
        for s in overlapping {
            let e = self.by_start.remove(&s).expect("present");
            start = start.min(s);
            end = end.max(e);
        }
        self.by_start.insert(start, end);
    }

    fn contains(&self, clock: u32) -> bool {
        self.by_start
            .range(..=clock)
            .next_back()
            .is_some_and(|(_, e)| clock < *e)
    }

    /// The parts of `[start, end)` not yet deleted.
    fn missing(&self, start: u32, end: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut at = start;
        let first = self
            .by_start
            .range(..=start)
            .next_back()
            .map(|(s, e)| (*s, *e));
        let rest = self
            .by_start
            .range(start.saturating_add(1)..end)
            .map(|(s, e)| (*s, *e));
        for (s, e) in first.into_iter().chain(rest) {
            if e <= at {
                continue;
            }
            if s > at {
                out.push((at, s.min(end)));
            }
            at = at.max(e);
            if at >= end {
                break;
            }
        }
        if at < end {
            out.push((at, end));
        }
        out
    }
}

/// What an item sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Up {
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
struct RegionId(u32);

impl RegionId {
    const GONE: RegionId = RegionId(0);
    /// Numbers from here on are regions first met in the update being
    /// placed, not yet in the table (`Fresh`).
    const FRESH: u32 = 1 << 31;

    fn fresh(&self) -> Option<usize> {
        self.0.checked_sub(Self::FRESH).map(|k| k as usize)
    }
}

/// Root types first met in an update, with their regions, in the order
/// their `RegionId`s number them from `RegionId::FRESH`.
type Fresh = SmallVec<[(Arc<str>, Region); 1]>;

/// Every region the index has placed items in, numbered, and the root
/// types' names that lead to them.
#[derive(Debug, Clone)]
struct Regions {
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
    fn get<'a>(&'a self, id: RegionId, fresh: &'a Fresh) -> &'a Region {
        match id.fresh() {
            Some(k) => &fresh[k].1,
            None => self.known(id),
        }
    }

    /// A region the table holds (every region an item of the index has).
    fn known(&self, id: RegionId) -> &Region {
        &self.table[id.0 as usize]
    }

    /// The region of root type `name`: from the table, or numbered among
    /// `fresh`.
    fn of_root(&self, name: &Arc<str>, fresh: &RefCell<Fresh>) -> RegionId {
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
struct Loc {
    region: RegionId,
    up: Up,
    /// The item creates a shared type (a paragraph, its text) that other
    /// items can live in.
    shared: bool,
    /// The item is a map entry's value (an attribute), not in a sequence.
    keyed: bool,
    /// The item is a formatting mark (bold on, bold off, ...).
    format: bool,
    /// Shared types between the item and its root.
    depth: u16,
}

impl Loc {
    fn gone() -> Loc {
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
    fn beside(neighbour: &Loc, shared: bool) -> Loc {
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
struct ClientState {
    /// Where its items live, by clock range.
    items: Ranges<Loc>,
    /// Its next clock (what the index has seen, which is what the document
    /// has: nothing is ever left pending in it).
    next: u32,
    /// Its deleted ranges.
    deleted: Deleted,
    /// The regions it has written into (a client writes into one or two).
    regions: SmallVec<[RegionId; 2]>,
    /// Its items' neighbours, for `SectionIndex::shows_order`.
    runs: Runs,
}

/// The per-meeting index of where every known item lives.
#[derive(Debug, Default, Clone)]
pub struct SectionIndex {
    clients: HashMap<u64, ClientState>,
    regions: Regions,
    /// Shared types that items were last placed in, live along with every
    /// type up to their root when the index recorded those items: typing
    /// in a paragraph then needs no walk up the tree for each keystroke.
    /// Any recorded deletion forgets them all, so they are live as long as
    /// they are remembered.
    live: LiveTypes,
}

/// The few shared types remembered as live (`SectionIndex::live`).
#[derive(Debug, Default, Clone)]
struct LiveTypes {
    ids: [Option<Id>; 4],
    next: usize,
}

impl LiveTypes {
    fn contains(&self, id: Id) -> bool {
        self.ids.contains(&Some(id))
    }

    fn remember(&mut self, id: Id) {
        if !self.contains(id) {
            self.ids[self.next] = Some(id);
            self.next = (self.next + 1) % self.ids.len();
        }
    }

    fn forget(&mut self) {
        self.ids = [None; 4];
    }
}

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

/// What an update builds on that the document does not hold yet: for each
/// client id, the clock the document must reach first (`(client, clock)`,
/// at most one entry per client). A keystroke sent before the part of its
/// history the server lacks has one entry.
pub type Missing = SmallVec<[(u64, u32); 1]>;

/// A new block's id range, place and neighbours: (client, start, end,
/// place, link; no link for collected content).
type Placed = (u64, u32, u32, Loc, Option<Link>);

/// The blocks of one update; a keystroke has one.
type PlacedBlocks = SmallVec<[Placed; 1]>;

/// What an accepted update adds to the index.
#[derive(Debug, Default, PartialEq)]
pub struct Accepted {
    blocks: PlacedBlocks,
    /// Root types the update creates, which the index does not know yet.
    fresh: Fresh,
    /// Regions the update writes or deletes in (`regions`).
    regions: SmallVec<[RegionId; 2]>,
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

/// Blocks of the update being checked, placed already, by client.
type Local = HashMap<u64, Ranges<Loc>>;

/// No blocks placed: what a keystroke's block is placed against. Making a
/// map, even an empty one, draws a random hash key.
static NONE_PLACED: std::sync::LazyLock<Local> = std::sync::LazyLock::new(Local::default);

impl SectionIndex {
    fn loc<'a>(&'a self, (client, clock): Id, local: &'a Local) -> Option<&'a Loc> {
        self.clients
            .get(&client)
            .and_then(|c| c.items.get(clock))
            .or_else(|| local.get(&client).and_then(|r| r.get(clock)))
    }

    fn is_deleted(&self, (client, clock): Id) -> bool {
        self.clients
            .get(&client)
            .is_some_and(|c| c.deleted.contains(clock))
    }

    fn clock(&self, client: u64) -> u32 {
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
    fn collected(&self, loc: &Loc, local: &Local) -> bool {
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
    fn resolve(&self, decoded: &Decoded, strict: bool) -> Result<(PlacedBlocks, Fresh), Refusal> {
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
    fn typed(
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
    fn check_fully(
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

    /// The run holding `id`: known to the index, or a block of `update`.
    fn run(&self, (client, clock): Id, update: &Decoded) -> Option<(u32, u32, Link)> {
        if let Some(run) = self.clients.get(&client).and_then(|c| c.runs.find(clock)) {
            return Some(run);
        }
        update
            .item_at((client, clock))
            .map(|(start, end, left, right)| (start, end, Link { left, right }))
    }

    /// Whether the neighbours recorded in the index (and the blocks of
    /// `update`) show that `r` stands right of `l`: a short walk along left
    /// origins from `r` reaches `l`, or one along right origins from `l`
    /// reaches `r`. This is how an honest client's neighbours almost always
    /// relate (the item it types before was inserted after the one it
    /// types after, or before something inserted right after that one); it
    /// costs a few lookups, where asking yrs for both positions walks the
    /// whole sequence up to them. `false` proves nothing.
    pub fn shows_order(&self, l: Id, r: Id, update: &Decoded) -> bool {
        // From `r` leftwards: `x` stands left of `r` after the first step.
        let mut x = r;
        for step in 0..ORDER_STEPS {
            let Some((start, _, link)) = self.run(x, update) else {
                break;
            };
            if l.0 == x.0 && start <= l.1 && (l.1 < x.1 || (step > 0 && l.1 == x.1)) {
                return true;
            }
            match link.left {
                Some(left) => x = left,
                None => break,
            }
        }
        // From `l` rightwards: `y` stands right of `l` after the first step.
        let mut y = l;
        for step in 0..ORDER_STEPS {
            let Some((_, end, link)) = self.run(y, update) else {
                return false;
            };
            if r.0 == y.0 && r.1 < end && (r.1 > y.1 || (step > 0 && r.1 == y.1)) {
                return true;
            }
            match link.right {
                Some(right) => y = right,
                None => return false,
            }
        }
        false
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
#[cfg(test)]
mod tests {
    use super::*;
    use crate::people::{AgencyId, UserId};
    use yrs::{
        Doc, ReadTxn, Text, Transact, WriteTxn, XmlElementPrelim, XmlFragment, XmlTextPrelim,
    };

    #[test]
    fn deleted_ranges_merge_like_a_set_of_clocks() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut deleted = Deleted::default();
        let mut model = vec![false; 300];
        for _ in 0..2_000 {
            let start = rng.random_range(0..290u32);
            let end = start + rng.random_range(1..10u32);
            deleted.add(start, end);
            for c in start..end {
                model[c as usize] = true;
            }
            // Stored ranges stay disjoint, not touching, and exactly the model.
            let ranges: Vec<(u32, u32)> = deleted.by_start.iter().map(|(s, e)| (*s, *e)).collect();
            assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0), "{ranges:?}");
            let mut covered = vec![false; 300];
            for (s, e) in &ranges {
                for c in *s..*e {
                    covered[c as usize] = true;
                }
            }
            assert_eq!(covered, model);
        }
        let missing = deleted.missing(0, 300);
        for (s, e) in missing {
            assert!((s..e).all(|c| !model[c as usize]));
        }
    }

    fn principal(agency: Option<AgencyId>, role: Option<Role>) -> Principal {
        Principal {
            user_id: UserId::new(),
            name: "x".into(),
            agency: None,
            agency_id: agency,
            is_admin: false,
            role,
        }
    }

    fn ownership(polis: AgencyId, skola: AgencyId) -> Ownership {
        Ownership {
            sections: [
                (
                    Arc::from("polis"),
                    SectionOwner::Agency { agency_id: polis },
                ),
                (
                    Arc::from("skola"),
                    SectionOwner::Agency { agency_id: skola },
                ),
            ]
            .into_iter()
            .collect(),
        }
    }

    /// Applies `update` to the server doc and index as an accepted update.
    fn accept(doc: &Doc, index: &mut SectionIndex, update: &[u8]) {
        let decoded = decode(update).unwrap();
        index.learn(&decoded);
        doc.transact_mut()
            .apply_update(yrs::Update::decode_v1(update).unwrap())
            .unwrap();
    }

    fn paragraph(doc: &Doc, root: &str, text: &str) -> Vec<u8> {
        let mut txn = doc.transact_mut();
        let f = txn.get_or_insert_xml_fragment(root);
        let p = f.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
        p.push_back(&mut txn, XmlTextPrelim::new(text));
        txn.encode_update_v1()
    }

    use yrs::updates::decoder::Decode;

    /// Three clients type into one text at random spots, each seeing the
    /// others' edits late. Every order the index shows holds in the
    /// document, and the index shows it for nearly every pair of adjacent
    /// characters, the neighbours an honest client inserts between.
    #[test]
    fn the_order_the_index_shows_is_the_documents() {
        use rand::{Rng, SeedableRng};
        use std::collections::HashMap;
        use yrs::{Assoc, ID, StickyIndex};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let writers: Vec<Doc> = (1..=3u64).map(Doc::with_client_id).collect();
        let server = Doc::new();
        let mut index = SectionIndex::default();
        // Updates each writer has not seen yet.
        let mut inbox: Vec<Vec<Vec<u8>>> = vec![Vec::new(); writers.len()];
        let (mut asked, mut shown) = (0, 0);
        for _ in 0..500 {
            let k = rng.random_range(0..writers.len());
            for u in inbox[k].drain(..) {
                writers[k]
                    .transact_mut()
                    .apply_update(yrs::Update::decode_v1(&u).unwrap())
                    .unwrap();
            }
            let text = writers[k].get_or_insert_text("section:polis");
            let update = {
                let mut txn = writers[k].transact_mut();
                let at = rng.random_range(0..=text.len(&txn));
                let typed = if rng.random_bool(0.2) { "abc" } else { "x" };
                text.insert(&mut txn, at, typed);
                txn.encode_update_v1()
            };
            // The neighbours the writer inserted between, as a client's
            // update is checked: before it is applied.
            let decoded = decode(&update).unwrap();
            for b in &decoded.blocks {
                if let Kind::Item {
                    left: Some(l),
                    right: Some(r),
                    ..
                } = b.kind
                {
                    asked += 1;
                    if index.shows_order(l, r, &decoded) {
                        shown += 1;
                    }
                }
            }
            accept(&server, &mut index, &update);
            for (j, queue) in inbox.iter_mut().enumerate() {
                if j != k {
                    queue.push(update.clone());
                }
            }
        }
        // Every character's position (nothing is deleted).
        let txn = server.transact();
        let mut at: HashMap<Id, u32> = HashMap::default();
        for (client, clock) in txn.state_vector().iter() {
            for c in 0..*clock {
                let offset = StickyIndex::from_id(ID::new(*client, c), Assoc::After)
                    .get_offset(&txn)
                    .unwrap();
                at.insert((client.get(), c), offset.index);
            }
        }
        let mut by_position: Vec<(u32, Id)> = at.iter().map(|(id, p)| (*p, *id)).collect();
        by_position.sort();
        assert_eq!(by_position.len(), at.len());
        let ids: Vec<Id> = by_position.iter().map(|(_, id)| *id).collect();
        let none = Decoded::default();
        let mut adjacent_shown = 0;
        for pair in ids.windows(2) {
            if index.shows_order(pair[0], pair[1], &none) {
                adjacent_shown += 1;
            }
            assert!(!index.shows_order(pair[1], pair[0], &none), "{pair:?}");
        }
        for _ in 0..20_000 {
            let (a, b) = (
                ids[rng.random_range(0..ids.len())],
                ids[rng.random_range(0..ids.len())],
            );
            if index.shows_order(a, b, &none) {
                assert!(at[&a] < at[&b], "{a:?} shown before {b:?}");
            }
        }
        assert!(adjacent_shown > 0);
        assert!(asked > 300, "{asked}");
        assert!(
            shown * 100 >= asked * 95,
            "the index shows the order of the neighbours of {shown} of {asked} insertions"
        );
    }

    /// A keystroke takes the shortcut, which debug builds compare with the
    /// whole check on every update the tests make; what it does not cover
    /// (another's section, another's client id) goes the whole way.
    #[test]
    fn a_keystroke_takes_the_shortcut_and_anything_else_the_whole_check() {
        use yrs::XmlOut;
        let (polis, skola) = (AgencyId::new(), AgencyId::new());
        let own = ownership(polis, skola);
        let police = principal(Some(polis), Some(Role::Member));
        let holder = police.user_id;
        let mut index = SectionIndex::default();
        let server = Doc::new();
        let client = Doc::with_client_id(1);
        accept(
            &server,
            &mut index,
            &paragraph(&client, "section:polis", "hej"),
        );
        let school = paragraph(&Doc::with_client_id(2), "section:skola", "hej");
        accept(&server, &mut index, &school);
        client
            .transact_mut()
            .apply_update(yrs::Update::decode_v1(&school).unwrap())
            .unwrap();
        // Types "!" at the end of the first paragraph of `root`.
        let keystroke = |root: &str| {
            let f = client.get_or_insert_xml_fragment(root);
            let mut txn = client.transact_mut();
            let Some(XmlOut::Element(p)) = f.get(&txn, 0) else {
                panic!("a paragraph")
            };
            let Some(XmlOut::Text(t)) = p.get(&txn, 0) else {
                panic!("its text")
            };
            let len = t.len(&txn);
            t.insert(&mut txn, len, "!");
            txn.encode_update_v1()
        };
        let update = keystroke("section:polis");
        let typed = decode(&update).unwrap();
        let accepted = index
            .typed(&police, &own, &typed, |_| Some(holder))
            .expect("a keystroke in one's own section takes the shortcut");
        assert_eq!(
            Ok(&accepted),
            index
                .check_fully(&police, &own, &typed, |_| Some(holder))
                .as_ref()
        );
        assert_eq!(accepted.regions(&index), [&Region::Section("polis".into())]);
        // What the shortcut leaves to the whole check.
        let the_long_way = |index: &SectionIndex, update: &Decoded, holder: UserId| {
            assert!(
                index
                    .typed(&police, &own, update, |_| Some(holder))
                    .is_none()
            );
            index.check(&police, &own, update, |_| Some(holder))
        };
        // Held by someone else.
        assert_eq!(
            the_long_way(&index, &typed, UserId::new()),
            Err(Refusal::ForeignClient)
        );
        accept(&server, &mut index, &update);
        // Typing on in the school's paragraph.
        let elsewhere = decode(&keystroke("section:skola")).unwrap();
        assert_eq!(
            the_long_way(&index, &elsewhere, holder),
            Err(Refusal::Forbidden(Region::Section("skola".into())))
        );
    }

    #[test]
    fn writing_in_ones_own_section_is_allowed_and_elsewhere_refused() {
        let (polis, skola) = (AgencyId::new(), AgencyId::new());
        let own = ownership(polis, skola);
        let index = SectionIndex::default();
        let police = principal(Some(polis), Some(Role::Member));
        let client = Doc::with_client_id(1);
        let update = paragraph(&client, "section:polis", "hej");
        let ok = index
            .check(&police, &own, &decode(&update).unwrap(), |_| None)
            .unwrap();
        assert_eq!(ok.regions(&index), [&Region::Section("polis".into())]);
        let update = paragraph(&Doc::with_client_id(2), "section:skola", "hej");
        assert_eq!(
            index
                .check(&police, &own, &decode(&update).unwrap(), |_| None)
                .unwrap_err(),
            Refusal::Forbidden(Region::Section("skola".into()))
        );
        let update = paragraph(&Doc::with_client_id(3), "agenda", "x");
        assert!(
            index
                .check(&police, &own, &decode(&update).unwrap(), |_| None)
                .is_err()
        );
        let justerare = principal(Some(polis), Some(Role::Justerare));
        let update = paragraph(&Doc::with_client_id(4), "section:polis", "x");
        assert!(
            index
                .check(&justerare, &own, &decode(&update).unwrap(), |_| None)
                .is_err()
        );
    }

    #[test]
    fn inserts_by_origin_and_deletes_resolve_to_the_items_section() {
        let (polis, skola) = (AgencyId::new(), AgencyId::new());
        let own = ownership(polis, skola);
        let server = Doc::with_client_id(100);
        let mut index = SectionIndex::default();
        let school = Doc::with_client_id(7);
        let first = {
            let text = school.get_or_insert_text("section:skola");
            let mut txn = school.transact_mut();
            text.insert(&mut txn, 0, "skolans text");
            txn.encode_update_v1()
        };
        accept(&server, &mut index, &first);

        // The police, synced, insert in the middle of the school's text
        // (placed by left/right origin, no parent in the update) and delete.
        let police_doc = Doc::with_client_id(8);
        police_doc
            .transact_mut()
            .apply_update(yrs::Update::decode_v1(&first).unwrap())
            .unwrap();
        let text = police_doc.get_or_insert_text("section:skola");
        let insert = {
            let mut txn = police_doc.transact_mut();
            text.insert(&mut txn, 3, "POLIS");
            txn.encode_update_v1()
        };
        let delete = {
            let mut txn = police_doc.transact_mut();
            text.remove_range(&mut txn, 0, 2);
            txn.encode_update_v1()
        };
        let police = principal(Some(polis), Some(Role::Member));
        for update in [&insert, &delete] {
            assert_eq!(
                index
                    .check(&police, &own, &decode(update).unwrap(), |_| None)
                    .unwrap_err(),
                Refusal::Forbidden(Region::Section("skola".into()))
            );
        }
        let school_member = principal(Some(skola), Some(Role::Member));
        assert!(
            index
                .check(&school_member, &own, &decode(&delete).unwrap(), |_| None)
                .is_ok()
        );
    }

    #[test]
    fn references_to_unknown_items_are_refused() {
        let (polis, skola) = (AgencyId::new(), AgencyId::new());
        let own = ownership(polis, skola);
        let a = Doc::with_client_id(1);
        let first = paragraph(&a, "section:polis", "a");
        let second = paragraph(&a, "section:polis", "b");
        let police = principal(Some(polis), Some(Role::Member));
        // The server never saw `first`, which `second` builds on.
        let index = SectionIndex::default();
        let decoded = decode(&second).unwrap();
        // Ahead of the client's clock: a gap, before anything is looked up.
        assert_eq!(
            index.check(&police, &own, &decoded, |_| None).unwrap_err(),
            Refusal::Gap
        );
        let _ = first;
    }

    #[test]
    fn tombstones_under_a_fresh_client_id_are_refused() {
        // A GC block for client 42, clocks 0..1000: no parent, no content.
        let mut encoder = yrs::updates::encoder::EncoderV1::new();
        {
            use yrs::{encoding::write::Write, updates::encoder::Encoder};
            encoder.write_var(1u32); // one client
            encoder.write_var(1u32); // one block
            encoder.write_client(yrs::ClientID::new(42));
            encoder.write_var(0u32); // starting clock
            encoder.write_info(0); // GC
            encoder.write_len(1000);
            encoder.write_var(0u32); // empty delete set
        }
        let update = yrs::updates::encoder::Encoder::to_vec(encoder);
        let decoded = decode(&update).unwrap();
        let (polis, skola) = (AgencyId::new(), AgencyId::new());
        let police = principal(Some(polis), Some(Role::Member));
        let index = SectionIndex::default();
        assert_eq!(
            index
                .check(&police, &ownership(polis, skola), &decoded, |_| None)
                .unwrap_err(),
            Refusal::ForeignClient
        );
    }

    #[test]
    fn already_deleted_ranges_are_no_ops() {
        let (polis, skola) = (AgencyId::new(), AgencyId::new());
        let own = ownership(polis, skola);
        let server = Doc::with_client_id(100);
        let mut index = SectionIndex::default();
        let school = Doc::with_client_id(7);
        let text = school.get_or_insert_text("section:skola");
        let ins = {
            let mut txn = school.transact_mut();
            text.insert(&mut txn, 0, "abc");
            txn.encode_update_v1()
        };
        accept(&server, &mut index, &ins);
        let del = {
            let mut txn = school.transact_mut();
            text.remove_range(&mut txn, 0, 1);
            txn.encode_update_v1()
        };
        accept(&server, &mut index, &del);
        // The police's full delete set contains the school's deletion.
        let police = principal(Some(polis), Some(Role::Member));
        let known = server.transact().state_vector();
        let state = school.transact().encode_state_as_update_v1(&known);
        assert!(
            index
                .check(&police, &own, &decode(&state).unwrap(), |_| None)
                .is_ok()
        );
    }
}
