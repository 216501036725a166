//! The range structures the guard's index is built of: id ranges of one
//! client with a value each (`Ranges`), the neighbours runs of items were
//! inserted between (`Runs`), deleted ranges (`Deleted`), and the few
//! shared types remembered as live (`LiveTypes`).

use std::collections::BTreeMap;

use super::Id;

/// Non-overlapping id ranges of one client, sorted by start clock.
///
/// A sorted vector rather than a search tree: a client's items only ever
/// arrive beyond what is known of it (an update's blocks start at the
/// client's clock), so a new range goes at the end, or among the few
/// ranges of the same update when its blocks resolve out of order; and
/// the range looked up most (the one a keystroke's left neighbour is in,
/// or its own run when recording it) is the last one, checked first.
#[derive(Debug, Clone)]
pub(super) struct Ranges<T> {
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
    pub(super) fn get(&self, clock: u32) -> Option<&T> {
        self.range(clock).map(|(_, _, value)| value)
    }

    /// The range containing `clock`: its end and value.
    pub(super) fn span(&self, clock: u32) -> Option<(u32, &T)> {
        self.range(clock).map(|(_, end, value)| (end, value))
    }

    pub(super) fn insert(&mut self, start: u32, end: u32, value: &T) {
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
    pub(super) left: Option<Id>,
    pub(super) right: Option<Id>,
}

/// One client's runs, by start clock.
#[derive(Debug, Default, Clone)]
pub(super) struct Runs {
    runs: Ranges<Link>,
}

impl Runs {
    pub(super) fn add(&mut self, client: u64, start: u32, end: u32, link: Link) {
        // Typing, one character after the other, extends one run.
        self.runs.add(start, end, link, |run, link| {
            link.left == Some((client, start - 1)) && run.right == link.right
        });
    }

    /// The run holding `clock`: its start, end and neighbours.
    pub(super) fn find(&self, clock: u32) -> Option<(u32, u32, Link)> {
        self.runs
            .range(clock)
            .map(|(start, end, link)| (start, end, *link))
    }
}

/// Deleted id ranges of one client, merged.
#[derive(Debug, Default, Clone)]
pub(super) struct Deleted {
    pub(super) by_start: BTreeMap<u32, u32>,
}

impl Deleted {
    pub(super) fn add(&mut self, start: u32, end: u32) {
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

    pub(super) fn contains(&self, clock: u32) -> bool {
        self.by_start
            .range(..=clock)
            .next_back()
            .is_some_and(|(_, e)| clock < *e)
    }

    /// The parts of `[start, end)` not yet deleted.
    pub(super) fn missing(&self, start: u32, end: u32) -> Vec<(u32, u32)> {
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

/// The few shared types remembered as live (`SectionIndex::live`).
#[derive(Debug, Default, Clone)]
pub(super) struct LiveTypes {
    ids: [Option<Id>; 4],
    next: usize,
}

impl LiveTypes {
    pub(super) fn contains(&self, id: Id) -> bool {
        self.ids.contains(&Some(id))
    }

    pub(super) fn remember(&mut self, id: Id) {
        if !self.contains(id) {
            self.ids[self.next] = Some(id);
            self.next = (self.next + 1) % self.ids.len();
        }
    }

    pub(super) fn forget(&mut self) {
        self.ids = [None; 4];
    }
}
