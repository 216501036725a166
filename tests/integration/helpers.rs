//! Test harness: a real server on an ephemeral port (in-process, or as a
//! child process when a test needs to kill it), its own database per test,
//! and a y-websocket client built on tokio-tungstenite and yrs.

use std::{collections::HashMap, net::SocketAddr, process::Stdio, sync::Once, time::Duration};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use protokoll::{
    auth::{self, secret},
    config::ServerConfig,
    meeting::{Meeting, MeetingDetails, MeetingId, MeetingTitle},
    people::{User, Username},
    store::{self, Database, DynStore, NewUser},
    sync::protocol::{self, Inbound},
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::TcpStream,
    task::JoinHandle,
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};
use tokio_util::sync::CancellationToken;
use yrs::{
    Doc, GetString, ReadTxn, StateVector, Transact, Update, WriteTxn, XmlElementPrelim,
    XmlFragment, XmlTextPrelim, updates::decoder::Decode,
};

/// How long any wait in a test may take before the test fails. Generous:
/// the machine running CI has two cores and is busy compiling.
pub const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn name(Backend)` once per backend, as separate
/// tests named `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::helpers::init_logs();
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::helpers::init_logs();
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Runs `body` with `$pool` a connection pool of the test database's own
/// kind (`sqlx::SqlitePool` or `sqlx::PgPool`), for SQL the server's store
/// does not offer; the body is written once and compiled for both.
#[macro_export]
macro_rules! with_pool {
    ($backend:expr, $url:expr, |$pool:ident| $body:expr) => {
        match $backend {
            $crate::helpers::Backend::Sqlite => {
                let $pool = sqlx::SqlitePool::connect($url).await.unwrap();
                $body
            }
            $crate::helpers::Backend::Postgres => {
                let $pool = sqlx::PgPool::connect($url).await.unwrap();
                $body
            }
        }
    };
}

/// Test logs stay silent unless `TEST_LOG` is set.
pub fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_test_writer()
                .try_init();
        }
    });
}

/// A database of its own for one test: a SQLite file in a temporary folder,
/// or a freshly created Postgres database that is dropped afterwards.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

fn postgres_admin_url() -> String {
    std::env::var("PROTOKOLL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite:{}", dir.path().join("protokoll.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let admin = postgres_admin_url();
                let name = format!("protokoll_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("Postgres must be running for the tests (PROTOKOLL_TEST_POSTGRES)");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin.rsplit_once('/').expect("URL with a database").0;
                Self {
                    url: format!("{base}/{name}"),
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// A database this harness did not create and will not drop (a test
    /// that runs its own Postgres cluster).
    pub fn external(url: String) -> Self {
        Self {
            url,
            _dir: None,
            pg_name: None,
        }
    }

    /// A SQLite file in memory (`/dev/shm` where there is one), for tests
    /// that time the server's own work: the disk's commit latency on a
    /// shared machine varies far more than what they measure.
    pub fn sqlite_in_memory_fs() -> Self {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("protokoll.db").display());
        Self {
            url,
            _dir: Some(dir),
            pg_name: None,
        }
    }

    pub async fn database(&self) -> Database {
        store::connect(&self.url).await.expect("open database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside async context; a small runtime of its own does
        // the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
                    .await
                    .ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

pub fn test_config() -> ServerConfig {
    ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    }
}

/// Creates a user (without a password) and an API token for them.
pub async fn user_with_token(db: &Database, username: &str, admin: bool) -> (User, String) {
    agency_user_with_token(db, username, admin, None).await
}

/// Like `user_with_token`, for a user of an agency.
pub async fn agency_user_with_token(
    db: &Database,
    username: &str,
    admin: bool,
    agency: Option<protokoll::people::AgencyId>,
) -> (User, String) {
    let user = match db
        .dir
        .user_by_username(&Username::parse(username).unwrap())
        .await
        .unwrap()
    {
        Some(user) => user,
        None => db
            .dir
            .create_user(NewUser {
                username: Username::parse(username).unwrap(),
                display_name: format!("{username} (test)"),
                agency,
                is_admin: admin,
                password_hash: None,
                vouched_by: protokoll::people::Voucher::CommandLine,
            })
            .await
            .unwrap(),
    };
    let (token, hash) = secret::generate(auth::TOKEN_PREFIX);
    db.dir.create_token(user.id, "test", &hash).await.unwrap();
    (user, token)
}

pub fn bearer_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// `GET url` with `http`: the body as text.
pub async fn get_text(http: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// `GET url` with `http`: the body as JSON.
pub async fn get_json(http: &reqwest::Client, url: impl reqwest::IntoUrl) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

pub async fn create_meeting(db: &Database, title: &str) -> Meeting {
    db.dir
        .create_meeting(
            MeetingTitle::parse(title).unwrap(),
            MeetingDetails::default(),
            None,
        )
        .await
        .unwrap()
}

/// Sections of every test meeting, all owned by the secretary ("scribe").
pub const TEST_SECTIONS: [&str; 8] = [
    "polis", "skola", "brand", "interop", "typing", "w0", "w1", "w2",
];

/// A meeting whose sections the returned token's user (its secretary) may
/// write.
pub async fn writable_meeting(db: &Database, title: &str) -> (Meeting, String) {
    let meeting = create_meeting(db, title).await;
    let (scribe, token) = user_with_token(db, "scribe", false).await;
    db.dir
        .set_participant(meeting.id, scribe.id, protokoll::people::Role::Secretary)
        .await
        .unwrap();
    for id in TEST_SECTIONS {
        db.dir
            .add_section(
                meeting.id,
                &protokoll::people::Section {
                    id: protokoll::people::SectionId::parse(id).unwrap(),
                    number: "1".into(),
                    title: id.into(),
                    owner: protokoll::people::SectionOwner::Secretary,
                },
            )
            .await
            .unwrap();
    }
    (meeting, token)
}

/// A server running inside the test process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub db: Database,
    /// An administrator's API token: may open every meeting, writes nothing.
    pub admin_token: String,
    /// The token of "scribe", the secretary of every meeting made by
    /// `meeting()` or `writable_meeting()`, who may write `TEST_SECTIONS`.
    pub writer_token: String,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub async fn start(db: &TestDb) -> Self {
        Self::start_with(db, test_config()).await
    }

    pub async fn start_with(db: &TestDb, config: ServerConfig) -> Self {
        let database = db.database().await;
        let (_, admin_token) = user_with_token(&database, "admin", true).await;
        let (_, writer_token) = user_with_token(&database, "scribe", false).await;
        let listener = tokio::net::TcpListener::bind(config.bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(protokoll::run(
            listener,
            config,
            database.clone(),
            shutdown.clone(),
        ));
        Self {
            addr,
            db: database,
            admin_token,
            writer_token,
            shutdown,
            task,
        }
    }

    /// Graceful shutdown, as on SIGTERM; returns once everything is flushed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("server shuts down in time")
            .expect("server task")
            .expect("server ran without error");
        self.db.close().await;
    }

    /// An HTTP client that signs in as the administrator (Bearer token).
    pub fn http_client(&self) -> reqwest::Client {
        bearer_client(&self.admin_token)
    }

    pub fn store(&self) -> &DynStore {
        &self.db.docs
    }

    /// Connects as the meetings' secretary and waits for the server's state.
    pub async fn synced(&self, meeting: MeetingId) -> Client {
        Client::synced(self.addr, meeting, &self.writer()).await
    }

    pub fn writer(&self) -> String {
        self.writer_token.clone()
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A meeting with `TEST_SECTIONS`, writable through `synced()`.
    pub async fn meeting(&self, title: &str) -> Meeting {
        writable_meeting(&self.db, title).await.0
    }
}

/// The `protokoll` binary as a child process, for tests that kill it.
pub struct ProcessServer {
    pub addr: SocketAddr,
    child: tokio::process::Child,
}

impl ProcessServer {
    pub async fn start(db: &TestDb) -> Self {
        let stderr = if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        Self::start_logging_to(db, stderr, "info").await
    }

    /// Starts the binary with its log (at `filter`) going to `stderr`.
    pub async fn start_logging_to(db: &TestDb, stderr: Stdio, filter: &str) -> Self {
        Self::start_command(db, &[], &[], stderr, filter).await
    }

    /// Starts the binary with `--demo` (and `args`) and returns the demo
    /// meeting's id (from the sign-in help it prints before listening).
    pub async fn start_demo(db: &TestDb, args: &[&str]) -> (Self, MeetingId) {
        let stderr = if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let args: Vec<&str> = ["--demo"].iter().chain(args).copied().collect();
        let (server, printed) = Self::spawn(db, &[], &args, stderr, "info").await;
        let meeting = printed
            .iter()
            .find_map(|l| l.strip_prefix("demo meeting: "))
            .and_then(|l| l.rsplit_once('('))
            .and_then(|(_, id)| id.trim_end_matches(')').parse().ok())
            .expect("the server prints the demo meeting's id");
        (server, meeting)
    }

    /// Starts `WRAPPER... protokoll --bind 127.0.0.1:0 ARGS...` (the wrapper
    /// being, say, `prlimit --nofile=256:256`).
    pub async fn start_command(
        db: &TestDb,
        wrapper: &[&str],
        args: &[&str],
        stderr: Stdio,
        filter: &str,
    ) -> Self {
        Self::spawn(db, wrapper, args, stderr, filter).await.0
    }

    /// Starts the binary (under `wrapper`, if any) with extra arguments;
    /// returns it and the lines it printed before listening.
    async fn spawn(
        db: &TestDb,
        wrapper: &[&str],
        args: &[&str],
        stderr: Stdio,
        filter: &str,
    ) -> (Self, Vec<String>) {
        let binary = protokoll_bin();
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = tokio::process::Command::new(program);
                c.args(rest).arg(binary);
                c
            }
            None => tokio::process::Command::new(binary),
        };
        let mut child = command
            .args(["--bind", "127.0.0.1:0"])
            .args(args)
            .env("PROTOKOLL_DATABASE_URL", &db.url)
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("start the protokoll binary");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        let addr = tokio::time::timeout(DEADLINE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("protokoll listening on http://") {
                    return url.parse::<SocketAddr>().unwrap();
                }
                printed.push(line);
            }
            panic!("server exited before listening");
        })
        .await
        .expect("server starts in time");
        (Self { addr, child }, printed)
    }

    /// The server's process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGTERM, as an orchestrator stops a service; waits for the exit.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running") as i32;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("server exits in time")
            .unwrap()
    }

    /// SIGKILL: no flushing, no goodbye.
    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

/// The server binary: the one cargo built for these tests, or
/// `PROTOKOLL_TEST_BIN` (a copy of it, where several checkouts share one
/// target directory and overwrite each other's `debug/protokoll`).
pub fn protokoll_bin() -> String {
    std::env::var("PROTOKOLL_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_protokoll").into())
}

/// What one run of the `protokoll` command did: whether it succeeded, and
/// what it printed.
pub struct Ran {
    pub ok: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Ran {
    /// What it printed on stdout, as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).unwrap()
    }
}

/// The `protokoll` command, run as a script runs it: arguments, an
/// environment, and maybe text on stdin (otherwise nothing: stdin is null).
pub struct Cli {
    command: std::process::Command,
    stdin: Option<String>,
}

impl Cli {
    /// The bare command, with the test process's environment.
    pub fn bare() -> Self {
        Self {
            command: std::process::Command::new(protokoll_bin()),
            stdin: None,
        }
    }

    /// On a test's database (`PROTOKOLL_DATABASE_URL`), logging warnings
    /// only (`RUST_LOG=warn`).
    pub fn on(db: &TestDb) -> Self {
        Self::bare()
            .env("PROTOKOLL_DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    pub fn args<S: AsRef<std::ffi::OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.command.env(key, value);
        self
    }

    /// Text written to its stdin, which then ends.
    pub fn stdin(mut self, text: Option<&str>) -> Self {
        self.stdin = text.map(str::to_owned);
        self
    }

    /// Runs it to the end.
    pub fn run(mut self) -> Ran {
        use std::io::Write;
        let stdin = match self.stdin {
            Some(_) => Stdio::piped(),
            None => Stdio::null(),
        };
        let mut child = self
            .command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the protokoll binary");
        if let Some(text) = self.stdin {
            let mut input = child.stdin.take().unwrap();
            input.write_all(text.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Ran {
            ok: out.status.success(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `protokoll ARGS` on a test's database: whether it succeeded, its stdout
/// and its stderr.
pub fn cli(db: &TestDb, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let ran = Cli::on(db).args(args).stdin(stdin).run();
    (ran.ok, ran.text(), ran.stderr)
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

pub fn sync_url(addr: SocketAddr, meeting: MeetingId, token: &str) -> String {
    format!("ws://{addr}/sync/{meeting}?token={token}")
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A y-websocket client: a yrs document kept in sync over a real socket.
pub struct Client {
    ws: Ws,
    pub doc: Doc,
    pub synced: bool,
    /// Live presence states by awareness client id, as this client sees them.
    pub presence: HashMap<u64, String>,
    /// How many presence states (relays) arrived, by awareness client id.
    pub presence_relays: HashMap<u64, usize>,
    /// Every update payload received from the server as a broadcast.
    pub broadcasts: Vec<Vec<u8>>,
    pub permission_denied: Option<String>,
    pub closed: Option<(u16, String)>,
}

impl Client {
    /// Connects with an API token and sends sync step 1; does not wait for
    /// the answer.
    pub async fn connect(addr: SocketAddr, meeting: MeetingId, token: &str) -> Self {
        Self::try_connect(&sync_url(addr, meeting, token))
            .await
            .expect("WebSocket connect")
    }

    pub async fn try_connect(url: &str) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        Self::try_connect_request(url.into_client_request()?).await
    }

    /// Connects like a y-websocket client that reconnects: its document
    /// (given as its whole state) comes along, and whatever the server
    /// lacks of it goes back when the server asks (sync step 1).
    pub async fn resume(addr: SocketAddr, meeting: MeetingId, token: &str, state: &[u8]) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let request = sync_url(addr, meeting, token)
            .into_client_request()
            .expect("request");
        let doc = Doc::new();
        doc.transact_mut()
            .apply_update(Update::decode_v1(state).expect("state"))
            .expect("apply state");
        Self::connect_with_doc(request, doc)
            .await
            .expect("WebSocket connect")
    }

    /// Connects with a prepared request (cookies, Origin, ...).
    pub async fn try_connect_request(
        url: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        Self::connect_with_doc(url, Doc::new()).await
    }

    async fn connect_with_doc(
        url: tokio_tungstenite::tungstenite::handshake::client::Request,
        doc: Doc,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        // Generous limits: a resync of a large document is one big message.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(256 << 20))
            .max_frame_size(Some(256 << 20));
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(config), false).await?;
        let mut client = Self {
            ws,
            doc,
            synced: false,
            presence: HashMap::new(),
            presence_relays: HashMap::new(),
            broadcasts: Vec::new(),
            permission_denied: None,
            closed: None,
        };
        let sv = client.doc.transact().state_vector();
        client.send_raw(protocol::encode_sync_step_1(&sv)).await;
        Ok(client)
    }

    /// Connects and waits until the server's state has arrived.
    pub async fn synced(addr: SocketAddr, meeting: MeetingId, token: &str) -> Self {
        let mut client = Self::connect(addr, meeting, token).await;
        client.until("synced", |c| c.synced).await;
        client
    }

    pub async fn send_raw(&mut self, frame: impl Into<Bytes>) {
        self.ws
            .send(Message::Binary(frame.into()))
            .await
            .expect("send frame");
    }

    /// Like `send_raw`, but a dead connection is an error, not a failure.
    pub async fn try_send(&mut self, frame: Bytes) -> Result<(), ()> {
        self.ws.send(Message::Binary(frame)).await.map_err(|_| ())
    }

    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.expect("send frame");
    }

    /// Appends a paragraph to the section fragment `root` and sends the
    /// update; returns the update's payload.
    pub async fn write(&mut self, root: &str, text: &str) -> Vec<u8> {
        let update = {
            let mut txn = self.doc.transact_mut();
            let fragment = txn.get_or_insert_xml_fragment(root);
            let p = fragment.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
            p.push_back(&mut txn, XmlTextPrelim::new(text));
            txn.encode_update_v1()
        };
        self.send_raw(protocol::encode_update(&update)).await;
        update
    }

    pub async fn set_presence(&mut self, json: &str) {
        let me = self.client_id();
        self.set_presence_for(me, 1, json).await
    }

    /// Sends an awareness update for any client id (to try forging).
    pub async fn set_presence_for(&mut self, client: u64, clock: u32, json: &str) {
        use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
        let update = AwarenessUpdate {
            clients: HashMap::from([(
                yrs::ClientID::new(client),
                AwarenessUpdateEntry {
                    clock,
                    json: json.into(),
                },
            )]),
        };
        self.send_raw(protocol::encode_awareness(&update)).await;
    }

    pub fn client_id(&self) -> u64 {
        self.doc.client_id().get()
    }

    /// The XML text of a section fragment.
    pub fn section(&self, root: &str) -> String {
        let txn = self.doc.transact();
        txn.get_xml_fragment(root)
            .map(|f| f.get_string(&txn))
            .unwrap_or_default()
    }

    /// Number of top-level children (paragraphs) in a section; cheap.
    pub fn paragraphs(&self, root: &str) -> u32 {
        let txn = self.doc.transact();
        txn.get_xml_fragment(root).map(|f| f.len(&txn)).unwrap_or(0)
    }

    /// Reads and handles one frame. Returns false once the connection ended.
    pub async fn step(&mut self) -> bool {
        if self.closed.is_some() {
            return false;
        }
        let Some(frame) = self.ws.next().await else {
            self.closed = Some((1006, "connection ended without a close frame".into()));
            return false;
        };
        match frame {
            Ok(Message::Binary(frame)) => {
                self.handle(&frame).await;
                true
            }
            Ok(Message::Close(frame)) => {
                self.closed = Some(
                    frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new())),
                );
                false
            }
            Ok(_) => true,
            Err(e) => {
                self.closed = Some((1006, e.to_string()));
                false
            }
        }
    }

    async fn handle(&mut self, frame: &Bytes) {
        // Auth messages are decoded here because the server side never
        // receives them and `decode_frame` skips their reason.
        if frame.first() == Some(&protocol::MSG_AUTH) {
            use yrs::sync::Message as YMessage;
            use yrs::updates::decoder::Decode;
            if let Ok(YMessage::Auth(reason)) = YMessage::decode_v1(frame) {
                self.permission_denied = reason;
            }
            return;
        }
        for message in protocol::decode_frame(frame).expect("server sends valid frames") {
            match message {
                Inbound::SyncStep1(sv) => {
                    let diff = self.doc.transact().encode_state_as_update_v1(&sv);
                    self.send_raw(protocol::encode_sync_step_2(&diff)).await;
                }
                Inbound::Update(u) => {
                    if !u.sync_step_2 {
                        self.broadcasts.push(u.payload.to_vec());
                    }
                    self.doc
                        .transact_mut()
                        .apply_update(u.update)
                        .expect("apply");
                    if u.sync_step_2 {
                        self.synced = true;
                    }
                }
                Inbound::Awareness(a) => {
                    for (client, entry) in a.update.clients {
                        *self.presence_relays.entry(client.get()).or_default() += 1;
                        if &*entry.json == "null" {
                            self.presence.remove(&client.get());
                        } else {
                            self.presence.insert(client.get(), entry.json.to_string());
                        }
                    }
                }
                Inbound::QueryAwareness | Inbound::Auth => {}
            }
        }
    }

    /// Reads frames until `done` holds; fails the test after `DEADLINE`.
    pub async fn until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let outcome = tokio::time::timeout(DEADLINE, async {
            while !done(self) {
                if !self.step().await {
                    return Err(self.closed.clone());
                }
            }
            Ok(())
        })
        .await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(closed)) => panic!("connection closed ({closed:?}) while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }

    /// Reads until the server closes the connection; returns code and reason.
    pub async fn closed_by_server(&mut self) -> (u16, String) {
        tokio::time::timeout(DEADLINE, async { while self.step().await {} })
            .await
            .expect("server closes the connection in time");
        self.closed.clone().unwrap()
    }

    /// Drops the connection with a TCP reset (`SO_LINGER` 0), as when a
    /// client vanishes: the server discards whatever it has not read yet.
    pub fn abort(self) {
        if let MaybeTlsStream::Plain(tcp) = self.ws.get_ref() {
            let _ = tcp.set_zero_linger();
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        // Drain until the server acknowledges, so the close is complete.
        let _ = tokio::time::timeout(DEADLINE, async { while self.step().await {} }).await;
    }
}

/// Rebuilds a document from what the store holds, the way a room does.
pub async fn stored_doc(store: &DynStore, meeting: MeetingId) -> Doc {
    let stored = store.load_document(meeting).await.unwrap();
    let doc = Doc::new();
    {
        let mut txn = doc.transact_mut();
        if let Some(s) = stored.snapshot {
            txn.apply_update(Update::decode_v1(&s.state).unwrap())
                .unwrap();
        }
        for (_, u) in stored.updates {
            txn.apply_update(Update::decode_v1(&u).unwrap()).unwrap();
        }
    }
    doc
}

pub fn full_state(doc: &Doc) -> Vec<u8> {
    doc.transact()
        .encode_state_as_update_v1(&StateVector::default())
}

pub fn fragment_text(doc: &Doc, root: &str) -> String {
    let txn = doc.transact();
    txn.get_xml_fragment(root)
        .map(|f| f.get_string(&txn))
        .unwrap_or_default()
}
