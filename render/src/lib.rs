//! Renders a locked protocol of Protokoll.
//!
//! The input is the canonical protocol ([`model::Protocol`]), the form
//! that is hashed and signed; the outputs are its canonical JSON text, a
//! self-contained HTML page, CommonMark, and PDF/A-2b typeset with Typst.
//! Every output is a pure function of its input: same protocol, same
//! bytes. This crate knows nothing of documents, databases or HTTP, and
//! lives apart from the server so that Typst's few hundred dependencies
//! are compiled once, not with every change to the server.

pub mod canonical;
pub mod html;
pub mod limits;
pub mod markdown;
pub mod model;
pub mod pdf;
mod text;

#[cfg(test)]
mod testdata;

pub use canonical::to_canonical_json;
pub use limits::Problem;
pub use model::{Protocol, Rendition, SignOff, Verification};
