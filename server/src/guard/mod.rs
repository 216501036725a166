//! The section guard: each agency writes only its own section, checked on
//! every update before it is applied.
//!
//! The guard keeps, per meeting, an index from item id ranges (client,
//! clock) to the region of the document they live in: a section, the
//! agenda, or another root. It is built from the stored history when a room
//! opens and extended with every accepted update. An incoming update is
//! decoded (not applied); each new block's region is found from its root
//! name, its parent item, or its neighbour (which may be in the same
//! update), and every deleted range's region from the index. The update is
//! accepted only if the sender may write every region it touches; it is
//! refused as a whole otherwise, and also if it refers to items the server
//! has never seen. See `docs/section-guard.md`.
//!
//! This module must never apply anything to a document: it only decides.

pub mod decode;

use std::{collections::BTreeMap, sync::Arc};

// aHash: several times cheaper than SipHash on the per-update path, and
// still randomly keyed, so clients cannot choose ids that collide.
use ahash::{AHashMap as HashMap, AHashSet as HashSet};

pub use decode::{Attach, Decoded, Malformed, decode};

use crate::{
    access::Principal,
    document::{AGENDA, SECTION_PREFIX},
    people::{Role, SectionOwner},
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

/// Non-overlapping id ranges of one client, by start clock.
#[derive(Debug, Clone)]
struct Ranges<T> {
    by_start: BTreeMap<u32, (u32, T)>,
}

impl<T> Default for Ranges<T> {
    fn default() -> Self {
        Self {
            by_start: BTreeMap::new(),
        }
    }
}

impl<T: Clone + PartialEq> Ranges<T> {
    fn get(&self, clock: u32) -> Option<&T> {
        let (_, (end, value)) = self.by_start.range(..=clock).next_back()?;
        (clock < *end).then_some(value)
    }

    /// The range containing `clock`: its end and value.
    fn span(&self, clock: u32) -> Option<(u32, &T)> {
        let (_, (end, value)) = self.by_start.range(..=clock).next_back()?;
        (clock < *end).then_some((*end, value))
    }

    fn insert(&mut self, start: u32, end: u32, value: T) {
        // Blocks are only ever added beyond what is known, so ranges never
        // overlap; merging with an adjacent equal range keeps the map small.
        if let Some((&s, (e, v))) = self.by_start.range_mut(..start).next_back()
            && *e == start
            && *v == value
        {
            let _ = s;
            *e = end;
            return;
        }
        self.by_start.insert(start, (end, value));
    }
}

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

/// The per-meeting index of where every known item lives.
#[derive(Debug, Default, Clone)]
pub struct SectionIndex {
    items: HashMap<u64, Ranges<Region>>,
    deleted: HashMap<u64, Deleted>,
    /// The regions each client id has written into.
    client_regions: HashMap<u64, HashSet<Region>>,
    /// The next clock of each client (what the index has seen).
    next: HashMap<u64, u32>,
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
}

/// What an accepted update adds to the index.
#[derive(Debug, Default)]
pub struct Accepted {
    blocks: Vec<(u64, u32, u32, Region)>,
    deletes: Vec<(u64, u32, u32)>,
    /// Regions the update writes or deletes in (for logs).
    pub regions: Vec<Region>,
}

impl SectionIndex {
    fn region_at(&self, client: u64, clock: u32) -> Option<&Region> {
        self.items.get(&client)?.get(clock)
    }

    /// The region a block attaches to: by root name, or through the item it
    /// names, known to the index or new in this update (`local`).
    fn attach_region(
        &self,
        attach: &Attach,
        local: &HashMap<u64, Ranges<Region>>,
    ) -> Option<Region> {
        match attach {
            Attach::Root(name) => Some(Region::of_root(name)),
            Attach::Gc => Some(Region::Gone),
            Attach::Parent(c, k) | Attach::Beside(c, k) => self
                .region_at(*c, *k)
                .or_else(|| local.get(c).and_then(|r| r.get(*k)))
                .cloned(),
        }
    }

    /// Finds the region of every block the server does not have yet (per
    /// `known`). Blocks may depend on blocks later in the same update, so
    /// this repeats until nothing more resolves.
    fn resolve(
        &self,
        decoded: &Decoded,
        have: impl Fn(u64) -> u32,
    ) -> Result<Vec<(u64, u32, u32, Region)>, Refusal> {
        let mut pending: Vec<(u64, u32, u32, &Attach)> = Vec::new();
        for b in &decoded.blocks {
            let have = have(b.client);
            let end = b.clock.checked_add(b.len).ok_or(Refusal::Malformed)?;
            if end <= have {
                continue;
            }
            let start = b.clock.max(have);
            pending.push((b.client, start, end, &b.attach));
        }
        let mut local: HashMap<u64, Ranges<Region>> = HashMap::new();
        let mut resolved = Vec::with_capacity(pending.len());
        // Only blocks of this update can refer to each other; a lone block
        // needs no local lookup table.
        let lone = pending.len() == 1;
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|&(client, start, end, attach)| {
                let region = self.attach_region(attach, &local);
                match region {
                    Some(region) => {
                        if !lone {
                            local
                                .entry(client)
                                .or_default()
                                .insert(start, end, region.clone());
                        }
                        resolved.push((client, start, end, region));
                        false
                    }
                    None => true,
                }
            });
            if pending.len() == before {
                return Err(Refusal::UnknownItems);
            }
        }
        Ok(resolved)
    }

    /// Decides whether `who` may apply `decoded`. On success returns what
    /// to record once the update is applied (`record`). Blocks the index has
    /// seen already are skipped, as yrs skips them when applying.
    pub fn check(
        &self,
        who: &Principal,
        ownership: &Ownership,
        decoded: &Decoded,
    ) -> Result<Accepted, Refusal> {
        let blocks = self.resolve(decoded, |c| self.next.get(&c).copied().unwrap_or(0))?;
        let mut regions: Vec<Region> = Vec::new();
        let mut checked_clients: Vec<u64> = Vec::new();
        for (client, _, _, region) in &blocks {
            // A client id belongs to whoever writes with it: new blocks under
            // an id that has written only where the sender may not write
            // would take over someone else's clock space.
            if !checked_clients.contains(client) {
                let ok = match self.client_regions.get(client) {
                    Some(rs) => rs.iter().any(|r| ownership.may_write(who, r)),
                    // A client id new to the meeting must bring content of
                    // its own: tombstones alone under a fresh id would only
                    // reserve clock space that its real owner is about to use.
                    None => blocks
                        .iter()
                        .any(|(c, _, _, r)| c == client && *r != Region::Gone),
                };
                if !ok {
                    return Err(Refusal::ForeignClient);
                }
                checked_clients.push(*client);
            }
            if *region == Region::Gone {
                continue;
            }
            if !ownership.may_write(who, region) {
                return Err(Refusal::Forbidden(region.clone()));
            }
            if !regions.contains(region) {
                regions.push(region.clone());
            }
        }
        let mut local: HashMap<u64, Ranges<Region>> = HashMap::new();
        for (client, start, end, region) in &blocks {
            local
                .entry(*client)
                .or_default()
                .insert(*start, *end, region.clone());
        }
        let mut deletes = Vec::new();
        for &(client, clock, len) in &decoded.deletes {
            let end = clock.checked_add(len).ok_or(Refusal::Malformed)?;
            // Deleting what is already deleted changes nothing: clients send
            // their whole delete set with every sync.
            let missing = match self.deleted.get(&client) {
                Some(d) => d.missing(clock, end),
                None => vec![(clock, end)],
            };
            for (s, e) in missing {
                for region in self.regions_between(client, s, e, &local)? {
                    if region == Region::Gone {
                        continue;
                    }
                    if !ownership.may_write(who, &region) {
                        return Err(Refusal::Forbidden(region));
                    }
                    if !regions.contains(&region) {
                        regions.push(region);
                    }
                }
                deletes.push((client, s, e - s));
            }
        }
        Ok(Accepted {
            blocks,
            deletes,
            regions,
        })
    }

    /// The regions of every item in `[s, e)` of `client`, known or new in
    /// this update; an id in neither is unknown.
    fn regions_between(
        &self,
        client: u64,
        s: u32,
        e: u32,
        local: &HashMap<u64, Ranges<Region>>,
    ) -> Result<Vec<Region>, Refusal> {
        let mut out: Vec<Region> = Vec::new();
        let mut at = s;
        while at < e {
            let (end, region) = [self.items.get(&client), local.get(&client)]
                .into_iter()
                .flatten()
                .find_map(|r| r.span(at))
                .ok_or(Refusal::UnknownItems)?;
            if !out.contains(region) {
                out.push(region.clone());
            }
            at = end;
        }
        Ok(out)
    }

    /// Records an accepted update.
    pub fn record(&mut self, accepted: &Accepted) {
        for (client, start, end, region) in &accepted.blocks {
            self.items
                .entry(*client)
                .or_default()
                .insert(*start, *end, region.clone());
            let next = self.next.entry(*client).or_default();
            *next = (*next).max(*end);
            if *region != Region::Gone {
                self.client_regions
                    .entry(*client)
                    .or_default()
                    .insert(region.clone());
            }
        }
        for (client, clock, len) in &accepted.deletes {
            self.deleted
                .entry(*client)
                .or_default()
                .add(*clock, clock + len);
        }
    }

    /// Adds a trusted update (stored history, the server's own edits)
    /// without checking permissions. Unresolvable blocks count as gone.
    pub fn learn(&mut self, decoded: &Decoded) {
        let next = self.next.clone();
        let have = |c: u64| next.get(&c).copied().unwrap_or(0);
        let blocks = match self.resolve(decoded, have) {
            Ok(blocks) => blocks,
            Err(_) => decoded
                .blocks
                .iter()
                .filter(|b| b.clock.saturating_add(b.len) > have(b.client))
                .map(|b| {
                    let region = self
                        .attach_region(&b.attach, &HashMap::new())
                        .unwrap_or(Region::Gone);
                    (b.client, b.clock, b.clock.saturating_add(b.len), region)
                })
                .collect(),
        };
        let accepted = Accepted {
            blocks,
            deletes: decoded.deletes.clone(),
            regions: Vec::new(),
        };
        self.record(&accepted);
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
            sections: HashMap::from([
                (
                    Arc::from("polis"),
                    SectionOwner::Agency { agency_id: polis },
                ),
                (
                    Arc::from("skola"),
                    SectionOwner::Agency { agency_id: skola },
                ),
            ]),
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

    #[test]
    fn writing_in_ones_own_section_is_allowed_and_elsewhere_refused() {
        let (polis, skola) = (AgencyId::new(), AgencyId::new());
        let own = ownership(polis, skola);
        let index = SectionIndex::default();
        let police = principal(Some(polis), Some(Role::Member));
        let client = Doc::with_client_id(1);
        let update = paragraph(&client, "section:polis", "hej");
        let ok = index
            .check(&police, &own, &decode(&update).unwrap())
            .unwrap();
        assert_eq!(ok.regions, vec![Region::Section("polis".into())]);
        let update = paragraph(&Doc::with_client_id(2), "section:skola", "hej");
        assert_eq!(
            index
                .check(&police, &own, &decode(&update).unwrap())
                .unwrap_err(),
            Refusal::Forbidden(Region::Section("skola".into()))
        );
        let update = paragraph(&Doc::with_client_id(3), "agenda", "x");
        assert!(
            index
                .check(&police, &own, &decode(&update).unwrap())
                .is_err()
        );
        let justerare = principal(Some(polis), Some(Role::Justerare));
        let update = paragraph(&Doc::with_client_id(4), "section:polis", "x");
        assert!(
            index
                .check(&justerare, &own, &decode(&update).unwrap())
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
                    .check(&police, &own, &decode(update).unwrap())
                    .unwrap_err(),
                Refusal::Forbidden(Region::Section("skola".into()))
            );
        }
        let school_member = principal(Some(skola), Some(Role::Member));
        assert!(
            index
                .check(&school_member, &own, &decode(&delete).unwrap())
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
        assert_eq!(
            index.check(&police, &own, &decoded).unwrap_err(),
            Refusal::UnknownItems
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
                .check(&police, &ownership(polis, skola), &decoded)
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
        assert!(index.check(&police, &own, &decode(&state).unwrap()).is_ok());
    }
}
