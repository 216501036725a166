//! Agencies, people and their roles: who someone is, which agency they speak
//! for, and what they are in a given meeting. Each name here parses and
//! validates its input once, at the boundary. This file holds the ids, the
//! validation error and the account records; the rules for text are in
//! [`text`], for login and display names and passwords in [`names`], for
//! roles and agenda sections in [`roles`].

mod names;
mod roles;
mod text;

pub use self::{names::*, roles::*, text::*};

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($name:ident, $what:literal) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| InvalidInput(concat!("not a valid ", $what, " id")))
            }
        }
    };
}

uuid_id!(AgencyId, "agency");
uuid_id!(UserId, "user");
uuid_id!(TokenId, "token");
uuid_id!(InvitationId, "invitation");

/// A validation failure, with a message fit to show the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub &'static str);

/// The one of `all` whose name (`name_of`, an enum's `as_str`) is `raw`:
/// parsing by the names written once for printing.
pub fn by_name<T: Copy>(all: &[T], name_of: impl Fn(&T) -> &'static str, raw: &str) -> Option<T> {
    all.iter().copied().find(|value| name_of(value) == raw)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agency {
    pub id: AgencyId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub display_name: String,
    pub agency: Option<Agency>,
    pub is_admin: bool,
    /// Set by an administrator: may create meetings (and so become their
    /// secretary). See [`User::may_create_meetings`].
    pub can_create_meetings: bool,
    #[serde(skip)]
    pub has_password: bool,
    /// Who vouched for this account's identity, if anyone has: an
    /// administrator creating it, or confirming an account that was made
    /// by accepting an invitation. See [`User::may_sign_off`].
    pub vouched: Option<Vouch>,
}

impl User {
    /// Whether this account may sign a protocol off or reject it as its
    /// chair or a justerare: only when an administrator vouches for who it
    /// is. The secretary alone could otherwise invite two accounts under
    /// the chair's and the justerare's names and sign as both.
    pub fn may_sign_off(&self) -> bool {
        self.vouched.is_some()
    }

    /// Who may create meetings: administrators, and those an administrator
    /// has given the right. Anyone else could otherwise make themselves the
    /// secretary of a meeting of their own.
    pub fn may_create_meetings(&self) -> bool {
        self.is_admin || self.can_create_meetings
    }
}

/// Who vouches for an account as it is created, or for an invited account
/// when an administrator confirms it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voucher {
    /// An administrator signed in to the API.
    Administrator(UserId),
    /// An operator at the command line (who has the database anyway).
    CommandLine,
    /// The demo data.
    Demo,
}

impl Voucher {
    /// `api`, `cli` or `demo`, as recorded.
    pub fn via(&self) -> &'static str {
        match self {
            Voucher::Administrator(_) => "api",
            Voucher::CommandLine => "cli",
            Voucher::Demo => "demo",
        }
    }

    pub fn administrator(&self) -> Option<UserId> {
        match self {
            Voucher::Administrator(id) => Some(*id),
            _ => None,
        }
    }
}

/// A vouching as recorded: how, by which administrator (when one signed
/// in to do it), and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Vouch {
    /// `api` (an administrator, named in `by`), `cli` (an operator at the
    /// command line), `demo`, or `upgrade` (an account that existed before
    /// vouching was recorded and did not come from an invitation).
    pub via: String,
    /// The administrator who vouched, through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<VouchingAdministrator>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VouchingAdministrator {
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    pub username: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: TokenId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests;

/// How someone proved who they are when they acted, as a sign-off records
/// it. An open set, named by `method`: `password` (a session opened with
/// their password, at sign-in or when they accepted their invitation),
/// `api_token` (with `token_id`), `command_line` (an operator with the
/// database acted for them with `--as`). Issue 28 adds single sign-on
/// (`openid_connect` with `provider` and `subject`); readers show a method
/// they do not know by its name and details.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SignIn {
    pub method: String,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub details: std::collections::BTreeMap<String, String>,
}

impl SignIn {
    fn method(method: &str) -> Self {
        Self {
            method: method.to_owned(),
            details: Default::default(),
        }
    }

    pub fn password() -> Self {
        Self::method("password")
    }

    pub fn api_token(id: TokenId) -> Self {
        let mut s = Self::method("api_token");
        s.details.insert("token_id".into(), id.to_string());
        s
    }

    pub fn command_line() -> Self {
        Self::method("command_line")
    }
}
