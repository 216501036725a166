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
//! Its parts: who may write where (`ownership`), the index (`index`) and
//! the range structures it is built of (`ranges`), where an update's new
//! blocks go (`place`), the check itself (`check`), and whether yrs and
//! Yjs would order an update's neighbours alike (`order`); reading an
//! update's structure is `decode`'s.

mod check;
pub mod decode;
mod index;
mod order;
mod ownership;
mod place;
mod ranges;
#[cfg(test)]
mod tests;

pub use check::{Accepted, Refusal};
pub use decode::{
    Block, Content, Decoded, Id, Kind, MAX_CLIENT, Malformed, Parent, Shared, decode,
};
pub use index::{MAX_DEPTH, Missing, SectionIndex};
pub use ownership::{Ownership, Region};
pub use ranges::Link;
