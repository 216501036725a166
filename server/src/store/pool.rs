//! The one database the relational half of the store runs on (`Pool`:
//! SQLite or Postgres), and the macros that run one piece of SQL on
//! whichever it is. Written once here for the directory, the protocols and
//! the backends' document reads.
//!
//! The SQL is the same on both backends (positional `$n` parameters, ids
//! as UUIDs, times bound from Rust), so each query is written once; the
//! macros expand their body once per backend, so that each expansion is
//! type-checked against its own driver. Time comparisons happen in Rust,
//! never in SQL, because SQLite stores times as text.

use sqlx::{PgPool, SqlitePool};

#[derive(Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to `$self.pool`'s backend pool.
macro_rules! with_pool {
    ($self:ident, $p:ident => $body:expr) => {
        match &$self.pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}
pub(super) use with_pool;

/// Opens a transaction that will write, on `$self.pool`: on SQLite with
/// `BEGIN IMMEDIATE`, so that one that reads before it writes waits for
/// another writer instead of failing with "database is locked" when it
/// tries to write.
macro_rules! begin_write {
    ($self:ident, |$tx:ident| $body:expr) => {
        match &$self.pool {
            $crate::store::Pool::Sqlite(p) => {
                let mut $tx = p.begin_with("BEGIN IMMEDIATE").await?;
                $body
            }
            $crate::store::Pool::Postgres(p) => {
                let mut $tx = p.begin().await?;
                $body
            }
        }
    };
}
pub(super) use begin_write;

/// Opens a transaction that holds the meeting against concurrent changes
/// and appends (`begin_write!`, and on Postgres the meeting's row `FOR
/// UPDATE`), and reads its state (None: no such meeting).
macro_rules! begin_on_meeting {
    ($self:ident, $meeting:expr, |$tx:ident, $state:ident| $body:expr) => {
        $crate::store::pool::begin_write!($self, |$tx| {
            let $state: Option<String> =
                sqlx::query_scalar($crate::store::pool::hold_meeting(&$self.pool))
                    .bind($meeting.as_uuid())
                    .fetch_optional(&mut *$tx)
                    .await?;
            $body
        })
    };
}
pub(super) use begin_on_meeting;

/// The statement with which `begin_on_meeting!` reads a meeting's state
/// and holds it: SQLite's `BEGIN IMMEDIATE` holds the whole database
/// already.
pub(super) fn hold_meeting(pool: &Pool) -> &'static str {
    match pool {
        Pool::Sqlite(_) => "SELECT state FROM meetings WHERE id = $1",
        Pool::Postgres(_) => "SELECT state FROM meetings WHERE id = $1 FOR UPDATE",
    }
}

/// Runs one statement with its parameters on `$self.pool` and gives the
/// number of rows it changed. With `map_err(f)` first, the driver's error
/// goes through `f` (e.g. `conflict`: a constraint the caller broke).
macro_rules! execute {
    ($self:ident, map_err($f:expr), $sql:expr $(, $param:expr)* $(,)?) => {
        $crate::store::pool::with_pool!($self, p => sqlx::query($sql)
            $(.bind($param))*
            .execute(p)
            .await
            .map_err($f)?
            .rows_affected())
    };
    ($self:ident, $sql:expr $(, $param:expr)* $(,)?) => {
        $crate::store::pool::execute!($self, map_err($crate::store::StoreError::from), $sql $(, $param)*)
    };
}
pub(super) use execute;

/// Runs one query with its parameters on `$self.pool`: None if it finds
/// no row, else `$map` of the row it finds (`$map` may use `?`), or the
/// row macro `$from_row` of a reference to it.
macro_rules! fetch_optional {
    ($self:ident, $sql:expr, [$($param:expr),* $(,)?], $from_row:ident) => {
        $crate::store::pool::fetch_optional!($self, $sql, [$($param),*], |row| $from_row!(&row))
    };
    ($self:ident, $sql:expr, [$($param:expr),* $(,)?], |$row:ident| $map:expr) => {
        $crate::store::pool::with_pool!($self, p => match sqlx::query($sql)
            $(.bind($param))*
            .fetch_optional(p)
            .await?
        {
            Some($row) => Some($map),
            None => None,
        })
    };
}
pub(super) use fetch_optional;

/// Runs one query with its parameters on `$self.pool` and gives `$map` of
/// every row, in order (`$map` may use `?`), or the row macro `$from_row`
/// of each.
macro_rules! fetch_all {
    ($self:ident, $sql:expr, [$($param:expr),* $(,)?], $from_row:ident) => {
        $crate::store::pool::fetch_all!($self, $sql, [$($param),*], |row| $from_row!(row))
    };
    ($self:ident, $sql:expr, [$($param:expr),* $(,)?], |$row:ident| $map:expr) => {
        $crate::store::pool::with_pool!($self, p => {
            let rows = sqlx::query($sql)$(.bind($param))*.fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for $row in &rows {
                out.push($map);
            }
            out
        })
    };
}
pub(super) use fetch_all;

/// Reads a meeting's stored document on `$conn` (a transaction, so that
/// the snapshot and the log tail agree): its snapshot and the log after
/// it. With `after: Some(n)`, a snapshot that covers no more than `n` is
/// left out and the log is read after `n` (what a reader holding the log
/// up to `n` lacks); with `None`, the whole document. `$seq` is the log's
/// position column: `seq` on SQLite (`mseq` is the same value there, but
/// not indexed), `mseq` on Postgres (migration 0006).
macro_rules! read_document {
    ($conn:expr, $meeting:expr, after: $after:expr, seq: $seq:literal) => {{
        let meeting = $meeting.as_uuid();
        let after: Option<$crate::store::Seq> = $after;
        let snapshot = match after {
            Some(after) => sqlx::query(
                "SELECT state, upto FROM doc_snapshots WHERE meeting_id = $1 AND upto > $2",
            )
            .bind(meeting)
            .bind(after),
            None => sqlx::query("SELECT state, upto FROM doc_snapshots WHERE meeting_id = $1")
                .bind(meeting),
        }
        .fetch_optional(&mut *$conn)
        .await?
        .map(|row| -> Result<$crate::store::Snapshot, sqlx::Error> {
            Ok($crate::store::Snapshot {
                state: sqlx::Row::try_get(&row, "state")?,
                upto: sqlx::Row::try_get(&row, "upto")?,
            })
        })
        .transpose()?;
        let from = snapshot
            .as_ref()
            .map_or(after.unwrap_or(0), |s: &$crate::store::Snapshot| s.upto);
        let updates = sqlx::query(concat!(
            "SELECT ",
            $seq,
            ", data FROM doc_updates WHERE meeting_id = $1 AND ",
            $seq,
            " > $2 ORDER BY ",
            $seq
        ))
        .bind(meeting)
        .bind(from)
        .fetch_all(&mut *$conn)
        .await?
        .into_iter()
        .map(|row| {
            Ok((
                sqlx::Row::try_get(&row, $seq)?,
                sqlx::Row::try_get(&row, "data")?,
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        $crate::store::StoredDocument { snapshot, updates }
    }};
}
pub(super) use read_document;
