//! The order rule: a block's right neighbour must stand after its left one
//! in the document, or yrs and Yjs would resolve the conflict it makes
//! differently and place the block in different spots. The index shows
//! the order of most neighbours in a few lookups; the document is asked
//! only for the rest. Reads the document, never applies to it.

use yrs::{Doc, Transact};

use super::{Decoded, Id, Kind, Link, Refusal, SectionIndex};

/// How many links `shows_order` follows on each side before it gives up.
const ORDER_STEPS: usize = 32;

impl SectionIndex {
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

    /// A block whose right neighbour does not come after its left one in
    /// the document (or is the same item): no Yjs client writes that (the
    /// right origin is the item that followed the left one), and yrs and
    /// Yjs resolve the conflict it makes differently, placing the block in
    /// different spots. Positions come from the document (live length up to
    /// an item); neighbours new in the same update are followed to the
    /// nearest known one. Positions are asked for only when the guard's
    /// index does not show the order already (`SectionIndex::shows_order`):
    /// yrs finds a position by walking its sequence from the start.
    pub fn misordered(&self, doc: &Doc, structure: &Decoded) -> Option<Refusal> {
        use yrs::{Assoc, ID, StickyIndex};
        // Most insertions have no right neighbour (typing at the end) or
        // neighbours whose order the index shows: no transaction for those.
        let mut unshown = structure.blocks.iter().filter_map(|b| match &b.kind {
            Kind::Item {
                left: Some(l),
                right: Some(r),
                ..
            } if !self.shows_order(*l, *r, structure) => Some((*l, *r)),
            _ => None,
        });
        let first = unshown.next()?;
        // The neighbours of the new block that holds `id`, if one does.
        let local = |id| structure.item_at(id).map(|(_, _, l, r)| (l, r));
        let txn = doc.transact();
        // Live length before the character `id` (`Assoc::After`), or up
        // to and including it (`Assoc::Before`, for a left neighbour).
        let position = |id: (u64, u32), assoc: Assoc| {
            StickyIndex::from_id(ID::new(yrs::ClientID::new(id.0), id.1), assoc)
                .get_offset(&txn)
                .map(|o| o.index)
        };
        // The nearest position known to the document, following a new
        // block's own neighbours on one side.
        let known = |mut id: (u64, u32), side: usize| {
            let assoc = [Assoc::Before, Assoc::After][side];
            for _ in 0..64 {
                if let Some(at) = position(id, assoc) {
                    return Some(at);
                }
                let (l, r) = local(id)?;
                id = [l, r][side]?;
            }
            None
        };
        for (l, r) in std::iter::once(first).chain(unshown) {
            if let (Some(l), Some(r)) = (known(l, 0), known(r, 1))
                && r < l
            {
                return Some(Refusal::Neighbours);
            }
        }
        None
    }
}
