//! Secrecy in a protocol (issue 27): what the law protects and may not be
//! published. For now the detector of what people forget to mark
//! (`detect`): personnummer, samordningsnummer and, as hints, e-mail
//! addresses and phone numbers.

pub mod detect;

pub use detect::{Finding, FindingKind, findings, has_identity_number};
