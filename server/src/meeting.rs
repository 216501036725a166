//! Meetings: the unit of collaboration. A meeting exists in the store before
//! anyone can open its document; its id names the document on the wire.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::people::{InvalidInput, by_name, optional_name, parse_date, parse_time};

/// Identifier of a meeting, and therefore of its Yjs document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MeetingId(Uuid);

impl MeetingId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for MeetingId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for MeetingId {
    fn from(value: Uuid) -> Self {
        Self(value)
    }
}

impl fmt::Display for MeetingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a meeting id: expected a UUID such as 3f2b9c4e-8a1d-4c55-9e0b-6a7d2f1c0e42")]
pub struct InvalidMeetingId;

impl FromStr for MeetingId {
    type Err = InvalidMeetingId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self).map_err(|_| InvalidMeetingId)
    }
}

/// A meeting's title, trimmed, non-empty and of a sane length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MeetingTitle(String);

impl MeetingTitle {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, InvalidTitle> {
        let trimmed = crate::people::trim_text(raw);
        if trimmed.is_empty() {
            return Err(InvalidTitle::Empty);
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(InvalidTitle::TooLong);
        }
        if trimmed.chars().any(crate::people::is_forbidden_in_text) {
            return Err(InvalidTitle::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// A title read back from the store. Stored titles were checked when
    /// they were written, possibly under older, laxer rules: reading one
    /// must not fail because the rules have since grown stricter.
    pub fn from_store(stored: String) -> Self {
        Self(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MeetingTitle {
    type Error = InvalidTitle;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<MeetingTitle> for String {
    fn from(value: MeetingTitle) -> Self {
        value.0
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidTitle {
    #[error("the title must not be empty")]
    Empty,
    #[error("the title must be at most 200 characters")]
    TooLong,
    #[error(
        "the title must not contain control characters, bidirectional controls \
         (U+202A-202E, U+2066-2069, U+200E, U+200F, U+061C) or line separators (U+2028, U+2029)"
    )]
    ControlCharacter,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Meeting {
    pub id: MeetingId,
    pub title: MeetingTitle,
    pub created_at: DateTime<Utc>,
    #[serde(flatten)]
    pub details: MeetingDetails,
    /// Where the protocol is in its life: draft, locked or verified.
    pub state: ProtocolState,
}

/// The life of a protocol: `draft` (utkast) while it is written,
/// `locked` (låst för justering) from the secretary's lock, `verified`
/// (justerat) once every required sign-off is in. A rejection or the
/// secretary's reopening takes a locked protocol back to draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolState {
    #[default]
    Draft,
    Locked,
    Verified,
}

impl ProtocolState {
    /// Every state, in the order of a protocol's life.
    pub const ALL: [ProtocolState; 3] = [
        ProtocolState::Draft,
        ProtocolState::Locked,
        ProtocolState::Verified,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ProtocolState::Draft => "draft",
            ProtocolState::Locked => "locked",
            ProtocolState::Verified => "verified",
        }
    }
}

impl FromStr for ProtocolState {
    type Err = InvalidMeetingId;

    /// The inverse of [`ProtocolState::as_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_name(&Self::ALL, Self::as_str, s).ok_or(InvalidMeetingId)
    }
}

/// What the protocol's header says besides the title.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MeetingDetails {
    /// The body that meets, e.g. "Lokala Brå Hägersten-Liljeholmen".
    pub body: String,
    /// `YYYY-MM-DD`.
    pub date: Option<String>,
    /// `HH:MM`.
    pub time: Option<String>,
    pub place: String,
}

impl MeetingDetails {
    /// The header as typed: `body` and `place` optional one-line names,
    /// `date` as `YYYY-MM-DD`, `time` as `HH:MM`. Checked in this order,
    /// the first mistake is the one reported.
    pub fn parse(
        body: &str,
        date: Option<&str>,
        time: Option<&str>,
        place: &str,
    ) -> Result<Self, InvalidInput> {
        Ok(Self {
            body: optional_name(body)?,
            date: date.map(parse_date).transpose()?,
            time: time.map(parse_time).transpose()?,
            place: optional_name(place)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meeting_id_round_trips_through_its_text_form() {
        let id = MeetingId::new();
        assert_eq!(id.to_string().parse::<MeetingId>(), Ok(id));
    }

    #[test]
    fn meeting_id_rejects_non_uuids() {
        assert_eq!("1; DROP TABLE".parse::<MeetingId>(), Err(InvalidMeetingId));
        assert_eq!("".parse::<MeetingId>(), Err(InvalidMeetingId));
    }

    #[test]
    fn title_is_trimmed() {
        let title = MeetingTitle::parse("  Lokala Brå 2018-03-09 ").unwrap();
        assert_eq!(title.as_str(), "Lokala Brå 2018-03-09");
    }

    #[test]
    fn title_rejects_empty_long_and_control_characters() {
        assert_eq!(MeetingTitle::parse("   "), Err(InvalidTitle::Empty));
        assert_eq!(
            MeetingTitle::parse(&"å".repeat(201)),
            Err(InvalidTitle::TooLong)
        );
        assert!(MeetingTitle::parse(&"å".repeat(200)).is_ok());
        assert_eq!(
            MeetingTitle::parse("a\u{0}b"),
            Err(InvalidTitle::ControlCharacter)
        );
        for spoof in [
            "Protokoll\u{202e}fdp.exe",
            "Titel\u{2028}Falsk rad",
            "a\u{2067}b",
            "Titel\u{2029}",
        ] {
            assert_eq!(
                MeetingTitle::parse(spoof),
                Err(InvalidTitle::ControlCharacter)
            );
        }
    }
}
