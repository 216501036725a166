//! Configuration from flags and `PROTOKOLL_*` environment variables, with
//! every default written once (`defaults`) and the limits they set (`Limits`).

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::Args;

/// The flag `--log-format` chooses how logs are written (`telemetry`).
pub use crate::telemetry::LogFormat;

/// Every default, written once: the flags below, [`ServerConfig::default`]
/// and [`Limits::default`] all take them from here.
pub mod defaults {
    pub const BIND: &str = "127.0.0.1:8080";
    pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
    pub const OUTBOUND_QUEUE: usize = 1024;
    pub const OUTBOUND_QUEUE_BYTES: usize = 8 * 1024 * 1024;
    pub const ROOM_GRACE_MS: u64 = 5_000;
    pub const SNAPSHOT_EVERY: u64 = 1_000;
    pub const PING_INTERVAL_SECS: u64 = 30;
    pub const SESSION_TTL_SECS: u64 = 12 * 3600;
    pub const SECTION_GUARD: bool = true;
    pub const MAX_SOCKETS_PER_USER: usize = 20;
    pub const MAX_SOCKETS_PER_ADDRESS: usize = 500;
    pub const REQUEST_BODY_TIMEOUT_SECS: u64 = 60;
    // The limits (`Limits`).
    pub const MAX_DOCUMENT_BYTES: u64 = 8 * 1024 * 1024;
    pub const UPDATE_RATE: f64 = 200.0;
    pub const UPDATE_BURST: f64 = 5_000.0;
    pub const UPDATE_BYTES_RATE: f64 = 1024.0 * 1024.0;
    pub const UPDATE_BYTES_BURST: f64 = 16.0 * 1024.0 * 1024.0;
    pub const PRESENCE_INTERVAL_MS: u64 = 100;
    pub const PRESENCE_RATE: f64 = 1_000.0;
    pub const PRESENCE_BURST: f64 = 5_000.0;
    pub const MAX_PRESENCE_BYTES: usize = 8 * 1024;
    pub const MAX_PRESENCE_CLIENTS: usize = 4;
    pub const MAX_CONNECTIONS_PER_MEETING: usize = 1_000;
}

/// A database URL. Its `Debug`/`Display` hide any password so that the URL
/// can appear in logs and error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // scheme://user:password@host/... -> scheme://user:***@host/...
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let userinfo = &self.0[scheme_end + 3..at];
                match userinfo.find(':') {
                    Some(colon) => write!(
                        f,
                        "{}{}:***{}",
                        &self.0[..scheme_end + 3],
                        &userinfo[..colon],
                        &self.0[at..]
                    ),
                    None => f.write_str(&self.0),
                }
            }
            _ => f.write_str(&self.0),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite:data/protokoll.db";

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Where documents are stored: `sqlite:PATH` (embedded, the default) or
    /// `postgres://user@host/db`. `DATABASE_URL` is read when
    /// `PROTOKOLL_DATABASE_URL` is not set.
    #[arg(long, env = "PROTOKOLL_DATABASE_URL", global = true)]
    pub database_url: Option<DatabaseUrl>,
}

impl DatabaseArgs {
    pub fn resolve(&self) -> DatabaseUrl {
        self.database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok().map(DatabaseUrl))
            .unwrap_or_else(|| DatabaseUrl(DEFAULT_DATABASE_URL.to_owned()))
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// Redis for several nodes serving the same meetings
    /// (`redis://host:6379/`): each node publishes what it accepted there
    /// and applies what the others publish. Needs Postgres (the nodes'
    /// shared truth); without it a node serves alone.
    #[arg(long, env = "PROTOKOLL_REDIS_URL", global = true)]
    pub redis_url: Option<DatabaseUrl>,

    /// PEM file with the certificate authority that signed Redis' TLS
    /// certificate, for a `rediss://` URL with a private CA (without it,
    /// the system's trust store).
    #[arg(long, env = "PROTOKOLL_REDIS_CA_FILE", global = true)]
    pub redis_ca_file: Option<PathBuf>,

    /// Address to listen on.
    #[arg(
        long,
        env = "PROTOKOLL_BIND",
        default_value = defaults::BIND,
        global = true
    )]
    pub bind: SocketAddr,

    /// Largest WebSocket message accepted, in bytes. Larger ones close the
    /// connection with code 1009.
    #[arg(long, env = "PROTOKOLL_MAX_MESSAGE_BYTES", default_value_t = defaults::MAX_MESSAGE_BYTES, global = true)]
    pub max_message_bytes: usize,

    /// Messages that may wait for one slow client before it is disconnected
    /// (close code 1013) so that it reconnects and resyncs.
    #[arg(
        long,
        env = "PROTOKOLL_OUTBOUND_QUEUE",
        default_value_t = defaults::OUTBOUND_QUEUE,
        global = true
    )]
    pub outbound_queue: usize,

    /// Bytes that may wait for one slow client before it is disconnected
    /// the same way.
    #[arg(long, env = "PROTOKOLL_OUTBOUND_QUEUE_BYTES", default_value_t = defaults::OUTBOUND_QUEUE_BYTES, global = true)]
    pub outbound_queue_bytes: usize,

    /// How long a meeting's document stays in memory after its last client
    /// leaves, in milliseconds.
    #[arg(
        long,
        env = "PROTOKOLL_ROOM_GRACE_MS",
        default_value_t = defaults::ROOM_GRACE_MS,
        global = true
    )]
    pub room_grace_ms: u64,

    /// Fold the update log into a snapshot after this many updates.
    #[arg(
        long,
        env = "PROTOKOLL_SNAPSHOT_EVERY",
        default_value_t = defaults::SNAPSHOT_EVERY,
        global = true
    )]
    pub snapshot_every: u64,

    /// Seconds between WebSocket pings; a client silent for two intervals is
    /// dropped.
    #[arg(
        long,
        env = "PROTOKOLL_PING_INTERVAL_SECS",
        default_value_t = defaults::PING_INTERVAL_SECS,
        global = true
    )]
    pub ping_interval_secs: u64,

    /// Serve the browser app from this folder (e.g. `web/dist`, for
    /// development) instead of the copy embedded in the binary.
    #[arg(long, env = "PROTOKOLL_WEB_DIR", global = true)]
    pub web_dir: Option<PathBuf>,

    /// How long a sign-in lasts, in seconds. Open connections are closed
    /// when their session expires.
    #[arg(long, env = "PROTOKOLL_SESSION_TTL_SECS", default_value_t = defaults::SESSION_TTL_SECS, global = true)]
    pub session_ttl_secs: u64,

    /// Mark the session cookie `Secure` (serve over HTTPS).
    #[arg(long, env = "PROTOKOLL_SECURE_COOKIES", global = true)]
    pub secure_cookies: bool,

    /// Origins (`https://protokoll.example.se`) from which cookie-signed-in
    /// browsers may call the API and open WebSockets; comma-separated. When
    /// empty, the origin must match the request's `Host`.
    #[arg(
        long,
        env = "PROTOKOLL_PUBLIC_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub public_origins: Vec<String>,

    /// Check every document update against section ownership. Turning it
    /// off lets anyone who may open a meeting write anywhere in it: only for
    /// measuring what the guard costs.
    #[arg(long, env = "PROTOKOLL_SECTION_GUARD", default_value_t = defaults::SECTION_GUARD, action = clap::ArgAction::Set, global = true)]
    pub section_guard: bool,

    /// Create the demo council (agencies, users, and a meeting from the
    /// Hägersten-Liljeholmen seed protocol) if it does not exist yet.
    #[arg(long, env = "PROTOKOLL_DEMO", global = true)]
    pub demo: bool,

    /// Reverse proxies (addresses or CIDR networks, comma-separated, such as
    /// `127.0.0.1,::1`) whose `X-Forwarded-For` names the client. Requests
    /// from anyone else are taken to come from their socket's address, and
    /// their `X-Forwarded-For` is ignored. Sign-in throttling, connection
    /// caps and logs use the client address found this way.
    #[arg(
        long,
        env = "PROTOKOLL_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_proxies: Vec<crate::client_addr::ProxyNet>,

    /// WebSockets one user may hold open at once (all meetings, all tabs and
    /// devices). One more is accepted and closed at once with 4429.
    #[arg(
        long,
        env = "PROTOKOLL_MAX_SOCKETS_PER_USER",
        default_value_t = defaults::MAX_SOCKETS_PER_USER,
        global = true
    )]
    pub max_sockets_per_user: usize,

    /// WebSockets one client address (an IPv6 /64) may hold open at once.
    /// Generous, because a whole municipality's staff may reach the server
    /// through one NAT address.
    #[arg(
        long,
        env = "PROTOKOLL_MAX_SOCKETS_PER_ADDRESS",
        default_value_t = defaults::MAX_SOCKETS_PER_ADDRESS,
        global = true
    )]
    pub max_sockets_per_address: usize,

    /// Largest encoded size of one meeting's document, in bytes. An update
    /// that would take it past this is refused as a whole (close 4413);
    /// the server's own edits (agenda, lock) always go through.
    #[arg(long, global = true, env = "PROTOKOLL_MAX_DOCUMENT_BYTES", default_value_t = defaults::MAX_DOCUMENT_BYTES)]
    pub max_document_bytes: u64,

    /// Document messages (sync, updates, query-awareness) one connection
    /// may send per second on average. Faster senders are slowed down (the
    /// server stops reading them for a while), never refused; 0: no limit.
    #[arg(
        long,
        global = true,
        env = "PROTOKOLL_UPDATE_RATE",
        default_value_t = defaults::UPDATE_RATE
    )]
    pub update_rate: f64,

    /// Document messages one connection may send at once before
    /// `--update-rate` applies.
    #[arg(
        long,
        global = true,
        env = "PROTOKOLL_UPDATE_BURST",
        default_value_t = defaults::UPDATE_BURST
    )]
    pub update_burst: f64,

    /// Bytes per second (all messages, presence included) one connection
    /// may send on average; faster senders are slowed down. 0: no limit.
    #[arg(long, global = true, env = "PROTOKOLL_UPDATE_BYTES_RATE", default_value_t = defaults::UPDATE_BYTES_RATE)]
    pub update_bytes_rate: f64,

    /// Bytes one connection may send at once before `--update-bytes-rate`
    /// applies.
    #[arg(long, global = true, env = "PROTOKOLL_UPDATE_BYTES_BURST", default_value_t = defaults::UPDATE_BYTES_BURST)]
    pub update_bytes_burst: f64,

    /// A connection's presence (awareness) is passed on at most once per
    /// this many milliseconds: only the latest state of each client id,
    /// and the last one always arrives.
    #[arg(
        long,
        global = true,
        env = "PROTOKOLL_PRESENCE_INTERVAL_MS",
        default_value_t = defaults::PRESENCE_INTERVAL_MS
    )]
    pub presence_interval_ms: u64,

    /// Presence (awareness) messages one connection may send per second on
    /// average; faster senders are slowed down like fast writers. Generous,
    /// because y-websocket clients echo every presence change they
    /// receive. 0: no limit.
    #[arg(
        long,
        global = true,
        env = "PROTOKOLL_PRESENCE_RATE",
        default_value_t = defaults::PRESENCE_RATE
    )]
    pub presence_rate: f64,

    /// Presence messages one connection may send at once before
    /// `--presence-rate` applies.
    #[arg(
        long,
        global = true,
        env = "PROTOKOLL_PRESENCE_BURST",
        default_value_t = defaults::PRESENCE_BURST
    )]
    pub presence_burst: f64,

    /// Largest presence (awareness) state of one client, in bytes of JSON;
    /// a larger one closes the connection with 4413.
    #[arg(long, global = true, env = "PROTOKOLL_MAX_PRESENCE_BYTES", default_value_t = defaults::MAX_PRESENCE_BYTES)]
    pub max_presence_bytes: usize,

    /// Presence client ids one connection may speak for (a y-websocket
    /// client uses one); more closes it with 4429.
    #[arg(
        long,
        global = true,
        env = "PROTOKOLL_MAX_PRESENCE_CLIENTS",
        default_value_t = defaults::MAX_PRESENCE_CLIENTS
    )]
    pub max_presence_clients: usize,

    /// Connections one meeting accepts on this server; one more is closed
    /// at once with 4429.
    #[arg(
        long,
        global = true,
        env = "PROTOKOLL_MAX_CONNECTIONS_PER_MEETING",
        default_value_t = defaults::MAX_CONNECTIONS_PER_MEETING
    )]
    pub max_connections_per_meeting: usize,

    /// Seconds a request's body may take to arrive, counted from the
    /// request's start (not between pieces: a body trickling in a byte at a
    /// time is cut off too). Past it the answer is 408 and the connection
    /// closes.
    #[arg(
        long,
        global = true,
        env = "PROTOKOLL_REQUEST_BODY_TIMEOUT_SECS",
        default_value_t = defaults::REQUEST_BODY_TIMEOUT_SECS
    )]
    pub request_body_timeout_secs: u64,

    /// Keep the Ed25519 key that signs verified protocols in this PKCS#8
    /// PEM file (created, readable by the owner only, if missing) instead
    /// of in the database.
    #[arg(long, env = "PROTOKOLL_SIGNING_KEY_FILE", global = true)]
    pub signing_key_file: Option<PathBuf>,
}

/// Why a node refuses `--redis-url` with SQLite.
pub const REDIS_NEEDS_POSTGRES: &str = "--redis-url (PROTOKOLL_REDIS_URL) needs a Postgres \
    database (--database-url postgres://...): several nodes share their documents through \
    Postgres, and a SQLite file belongs to one node";

impl ServerConfig {
    /// Whether these settings can serve from a database that is (or is not)
    /// Postgres: `--redis-url` makes this node one of several, and a SQLite
    /// file belongs to one node ([`REDIS_NEEDS_POSTGRES`]).
    pub fn check_database(&self, postgres: bool) -> Result<(), &'static str> {
        if self.redis_url.is_some() && !postgres {
            return Err(REDIS_NEEDS_POSTGRES);
        }
        Ok(())
    }

    pub fn room_grace(&self) -> Duration {
        Duration::from_millis(self.room_grace_ms)
    }

    pub fn session_ttl(&self) -> chrono::Duration {
        chrono::Duration::seconds(self.session_ttl_secs.clamp(1, 366 * 24 * 3600) as i64)
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs.max(1))
    }

    pub fn request_body_timeout(&self) -> Duration {
        Duration::from_secs(self.request_body_timeout_secs.max(1))
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_document_bytes: self.max_document_bytes,
            update_rate: self.update_rate,
            update_burst: self.update_burst,
            update_bytes_rate: self.update_bytes_rate,
            update_bytes_burst: self.update_bytes_burst,
            presence_interval: Duration::from_millis(self.presence_interval_ms),
            presence_rate: self.presence_rate,
            presence_burst: self.presence_burst,
            max_presence_bytes: self.max_presence_bytes,
            max_presence_clients: self.max_presence_clients.max(1),
            max_connections_per_meeting: self.max_connections_per_meeting.max(1),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: defaults::BIND.parse().expect("literal address"),
            max_message_bytes: defaults::MAX_MESSAGE_BYTES,
            outbound_queue: defaults::OUTBOUND_QUEUE,
            outbound_queue_bytes: defaults::OUTBOUND_QUEUE_BYTES,
            room_grace_ms: defaults::ROOM_GRACE_MS,
            snapshot_every: defaults::SNAPSHOT_EVERY,
            ping_interval_secs: defaults::PING_INTERVAL_SECS,
            web_dir: None,
            session_ttl_secs: defaults::SESSION_TTL_SECS,
            secure_cookies: false,
            public_origins: Vec::new(),
            section_guard: defaults::SECTION_GUARD,
            demo: false,
            trusted_proxies: Vec::new(),
            max_sockets_per_user: defaults::MAX_SOCKETS_PER_USER,
            max_sockets_per_address: defaults::MAX_SOCKETS_PER_ADDRESS,
            max_document_bytes: defaults::MAX_DOCUMENT_BYTES,
            update_rate: defaults::UPDATE_RATE,
            update_burst: defaults::UPDATE_BURST,
            update_bytes_rate: defaults::UPDATE_BYTES_RATE,
            update_bytes_burst: defaults::UPDATE_BYTES_BURST,
            presence_interval_ms: defaults::PRESENCE_INTERVAL_MS,
            presence_rate: defaults::PRESENCE_RATE,
            presence_burst: defaults::PRESENCE_BURST,
            max_presence_bytes: defaults::MAX_PRESENCE_BYTES,
            max_presence_clients: defaults::MAX_PRESENCE_CLIENTS,
            max_connections_per_meeting: defaults::MAX_CONNECTIONS_PER_MEETING,
            request_body_timeout_secs: defaults::REQUEST_BODY_TIMEOUT_SECS,
            signing_key_file: None,
            redis_url: None,
            redis_ca_file: None,
        }
    }
}

/// The per-connection and per-meeting limits (`sync::limits` enforces
/// them), from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest encoded size of a meeting's document (see `Room`).
    pub max_document_bytes: u64,
    /// Document messages (sync and query-awareness) per second, and how many
    /// may come at once.
    pub update_rate: f64,
    pub update_burst: f64,
    /// Bytes per second of everything a connection sends, and how many may
    /// come at once.
    pub update_bytes_rate: f64,
    pub update_bytes_burst: f64,
    /// At most one presence batch per connection per this interval.
    pub presence_interval: Duration,
    /// Presence messages per second, and how many may come at once.
    pub presence_rate: f64,
    pub presence_burst: f64,
    /// Largest awareness state (JSON) of one client id.
    pub max_presence_bytes: usize,
    /// Presence client ids one connection may speak for.
    pub max_presence_clients: usize,
    /// Connections one meeting's room accepts (on this server node).
    pub max_connections_per_meeting: usize,
}

impl Default for Limits {
    /// The limits of the default configuration.
    fn default() -> Self {
        ServerConfig::default().limits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_hides_the_password() {
        let url: DatabaseUrl = "postgres://app:s3cret@db.example:5432/protokoll"
            .parse()
            .unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db.example:5432/protokoll"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(
            url.expose(),
            "postgres://app:s3cret@db.example:5432/protokoll"
        );
    }

    #[test]
    fn default_limits_match_the_flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            server: ServerConfig,
        }
        let parsed = Cli::parse_from(["protokoll"]).server.limits();
        let default = ServerConfig::default().limits();
        assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
        assert_eq!(format!("{default:?}"), format!("{:?}", Limits::default()));
    }

    #[test]
    fn database_url_without_password_is_shown_as_is() {
        let url: DatabaseUrl = "sqlite:data/protokoll.db".parse().unwrap();
        assert_eq!(url.to_string(), "sqlite:data/protokoll.db");
        let url: DatabaseUrl = "postgres://postgres@127.0.0.1/test".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://postgres@127.0.0.1/test");
    }
}
