//! `protokoll-loadgen`: an open-loop load generator for Yjs collaboration
//! servers speaking y-websocket or Hocuspocus framing. See README.md.

mod client;
mod clock;
mod cold;
mod latency;
mod procstat;
mod report;
mod scenarios;
mod setup;
#[cfg(test)]
mod testserver;
mod trace;
mod typist;
mod wire;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::wire::Protocol;

#[derive(Parser)]
#[command(
    name = "protokoll-loadgen",
    version,
    about = "Open-loop load generator for y-websocket / Hocuspocus servers",
    after_help = "Prints a table, then one line `RESULT {json}` for scripts. See loadgen/README.md."
)]
struct Cli {
    /// Tokio worker threads for the generator (default: one per core).
    #[arg(long, global = true)]
    worker_threads: Option<usize>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fan-out latency: M meetings x C clients, W of them typing at a fixed
    /// rate (scenarios 1 and 3).
    Fanout(FanoutArgs),
    /// Increase the typing rate step by step until p99 exceeds the limit
    /// (scenario 2).
    Ramp(RampArgs),
    /// Open many idle connections and report the server's resident memory
    /// per connection (scenario 4).
    Idle(IdleArgs),
    /// Time from connect to sync step 2 for a meeting holding a long
    /// editing trace (scenario 5).
    Cold(cold::ColdArgs),
    /// Write a B4-like single-character editing trace (length-prefixed Yjs
    /// v1 updates) for `cold`.
    GenTrace(trace::GenTraceArgs),
}

/// Where and how to connect; shared by every scenario.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// WebSocket base URL. y-websocket: the document name is appended as a
    /// path segment (our server: ws://HOST:PORT/sync). Hocuspocus: used as
    /// is. Several (repeated or comma-separated), e.g. the nodes of a
    /// cluster: the k-th client of every meeting connects to URL number
    /// k mod n, so the clients of one meeting sit on different nodes.
    #[arg(
        long,
        value_delimiter = ',',
        required = false,
        default_value = "ws://127.0.0.1:8080/sync"
    )]
    pub url: Vec<String>,

    #[arg(long, value_enum, default_value_t = Protocol::YWebsocket)]
    pub protocol: Protocol,

    /// Create the meetings with `POST {URL}/api/meetings` (our server, e.g.
    /// http://127.0.0.1:8080). Without it, random UUIDs are used as
    /// document names (for servers that create documents on connect).
    #[arg(long, value_name = "URL")]
    pub create_meetings_via: Option<String>,

    /// API tokens, one per line (`TOKEN` or `TOKEN SECTION_ID`); each new
    /// connection takes the next one, round-robin. y-websocket: sent as
    /// `?token=`; Hocuspocus: in the auth message.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// Our server: sign in as agency users, as a council does. Creates one
    /// agency per writer (with a user and an API token), gives every meeting
    /// one section per agency, owned by it, and lets the other clients read
    /// as members. Needs --create-meetings-via and an admin's token in
    /// PROTOKOLL_TOKEN; replaces --token-file.
    #[arg(long, requires = "create_meetings_via", conflicts_with = "token_file")]
    pub as_agencies: bool,

    /// The server's process id, for CPU time and resident memory from /proc.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// Connections being opened at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,

    /// Seconds to wait for one connection (TCP + upgrade).
    #[arg(long, default_value_t = 30.0)]
    pub connect_timeout: f64,

    /// Seconds to wait for all clients to finish the sync handshake.
    #[arg(long, default_value_t = 120.0)]
    pub sync_timeout: f64,

    /// Send an awareness state every N seconds from every client, as
    /// providers do (0 = never). Hocuspocus closes connections that send
    /// nothing for its `timeout` (60 s by default).
    #[arg(long, default_value_t = 0.0)]
    pub awareness_every: f64,
}

#[derive(Args, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 500)]
    pub meetings: usize,
    #[arg(long, default_value_t = 3)]
    pub clients_per_meeting: usize,
    /// Clients per meeting that type (the first W of each meeting;
    /// default: all of them).
    #[arg(long)]
    pub writers_per_meeting: Option<usize>,
    /// Updates per second per writer.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Seconds of typing before measuring starts.
    #[arg(long, default_value_t = 5.0)]
    pub warmup: f64,
    /// Seconds to wait for in-flight deliveries after typing stops.
    #[arg(long, default_value_t = 2.0)]
    pub drain: f64,
    /// Also report every measured second on its own (by scheduled send
    /// time): sends, deliveries, p50/p99/max, with its Unix time, to line
    /// up with events outside (a Redis outage).
    #[arg(long)]
    pub timeline: bool,
}

#[derive(Args, Debug)]
pub struct RampArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 100)]
    pub meetings: usize,
    #[arg(long, default_value_t = 10)]
    pub clients_per_meeting: usize,
    /// Clients per meeting that type (default: all of them).
    #[arg(long)]
    pub writers_per_meeting: Option<usize>,
    /// Per-writer rate of the first step (updates/s).
    #[arg(long, default_value_t = 0.5)]
    pub rate_start: f64,
    /// Each step multiplies the rate by this.
    #[arg(long, default_value_t = 1.5)]
    pub rate_factor: f64,
    #[arg(long, default_value_t = 15)]
    pub max_steps: usize,
    /// Measured seconds per step.
    #[arg(long, default_value_t = 10.0)]
    pub step_duration: f64,
    /// Unmeasured seconds at the start of each step.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds after each step for in-flight deliveries (typing paused).
    #[arg(long, default_value_t = 1.0)]
    pub drain: f64,
    /// A step passes while its p99 fan-out latency stays at or below this.
    #[arg(long, default_value_t = 50.0)]
    pub p99_limit_ms: f64,
    /// ... and at least this share of expected deliveries arrived.
    #[arg(long, default_value_t = 0.99)]
    pub min_delivery: f64,
}

#[derive(Args, Debug)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 1000)]
    pub meetings: usize,
    #[arg(long, default_value_t = 10)]
    pub clients_per_meeting: usize,
    /// Seconds to let the server settle after the last client synced,
    /// before reading its memory.
    #[arg(long, default_value_t = 5.0)]
    pub settle: f64,
    /// Seconds to keep the connections open after that (memory is read
    /// again at the end).
    #[arg(long, default_value_t = 0.0)]
    pub hold: f64,
}

impl Common {
    /// The URL the k-th client of a meeting connects to.
    pub fn url_for(&self, k: usize) -> &str {
        &self.url[k % self.url.len()]
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.worker_threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Fanout(a) => scenarios::fanout(a).await,
            Command::Ramp(a) => scenarios::ramp(a).await,
            Command::Idle(a) => scenarios::idle(a).await,
            Command::Cold(a) => cold::run(a).await,
            Command::GenTrace(a) => trace::generate(a),
        }
    })
}
