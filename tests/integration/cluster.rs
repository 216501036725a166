//! Several nodes, one meeting: three server processes sharing a PostgreSQL
//! cluster and a Redis of this test's own (on free loopback ports, so that
//! it may stop and restart them; Redis with a password, as `deploy/` runs
//! it), behind real nginx running the configuration shipped in
//! `deploy/nginx/` (only the list of nodes is written here, as deployment
//! tooling writes it). `cluster_redis` uses the same site.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use protokoll::{meeting::MeetingId, people::Role, store::Database};
use serde_json::{Value, json};

use crate::helpers::{
    Cli, Client, DEADLINE, ProcessServer, TestDb, bearer_client, get_json, init_logs, stored_doc,
    user_with_token, writable_meeting,
};
use crate::interop::Typist;

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    // SAFETY: a plain system call without arguments.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a PostgreSQL tool as the `postgres` user when the test runs as root
/// (initdb and postgres refuse to run as root).
fn pg_command(bin: &Path, tool: &str) -> std::process::Command {
    let program = bin.join(tool);
    if is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    }
}

fn run(mut command: std::process::Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PostgreSQL cluster of this test's own.
pub(crate) struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    pub(crate) fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql")
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let version: u32 = e.file_name().to_str()?.parse().ok()?;
                Some((version, e.path().join("bin")))
            })
            .max()
            .expect("a PostgreSQL version")
            .1;
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            run(
                {
                    let mut c = std::process::Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(dir.path());
                    c
                },
                "chown",
            );
        }
        let data = dir.path().join("data");
        let mut initdb = pg_command(&bin, "initdb");
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb");
        let pg = Self {
            bin,
            data,
            dir,
            port: free_port(),
        };
        pg.start_again();
        pg
    }

    pub(crate) fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let mut start = pg_command(&self.bin, "pg_ctl");
        start
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-o", &options, "start"]);
        run(start, "pg_ctl start");
    }

    pub(crate) fn stop(&self, mode: &str) {
        let mut stop = pg_command(&self.bin, "pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "stop"]);
        run(stop, "pg_ctl stop");
    }

    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A database in this cluster, migrated by the first `database()`.
    pub(crate) async fn create_database(&self, name: &str) -> TestDb {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        TestDb::external(self.url(name))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut stop = pg_command(&self.bin, "pg_ctl");
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = stop.output();
    }
}

/// A Redis of this test's own, with a password (`requirepass`).
pub(crate) struct Redis {
    port: u16,
    password: String,
    child: Option<tokio::process::Child>,
}

impl Redis {
    pub(crate) async fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            password: format!("pw-{}", uuid::Uuid::new_v4().simple()),
            child: None,
        };
        redis.start_again().await;
        redis
    }

    pub(crate) async fn start_again(&mut self) {
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--requirepass", &self.password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let port = self.port;
        tokio::time::timeout(DEADLINE, async move {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("Redis listens in time");
    }

    pub(crate) async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    /// The URL the nodes use, with the password.
    pub(crate) fn url(&self) -> String {
        format!("redis://:{}@127.0.0.1:{}/", self.password, self.port)
    }

    /// The URL without the password: refused by Redis.
    pub(crate) fn url_without_password(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// nginx with the shipped configuration, balancing over `nodes`.
pub(crate) struct Nginx {
    pub(crate) addr: SocketAddr,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub(crate) async fn start(nodes: &[SocketAddr]) -> Self {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let servers: String = nodes
            .iter()
            .map(|n| format!("    server {n} max_fails=1 fail_timeout=5s;\n"))
            .collect();
        // The shipped upstream file, with this test's nodes.
        let shipped = std::fs::read_to_string(deploy.join("protokoll-upstream.conf")).unwrap();
        let mut upstream = String::new();
        let mut listed = false;
        for line in shipped.lines() {
            if line.trim_start().starts_with("server ") {
                if !listed {
                    upstream.push_str(&servers);
                    listed = true;
                }
                continue;
            }
            upstream.push_str(line);
            upstream.push('\n');
        }
        assert!(listed, "the shipped upstream lists its nodes");
        std::fs::write(dir.path().join("protokoll-upstream.conf"), upstream).unwrap();
        let user = if is_root() { "user root root;\n" } else { "" };
        let conf = format!(
            "{user}worker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  include {common};\n  server {{\n    listen 127.0.0.1:{port};\n    include {locations};\n  }}\n}}\n",
            dir = dir.path().display(),
            common = deploy.join("protokoll-common.conf").display(),
            locations = deploy.join("protokoll-locations.conf").display(),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = tokio::process::Command::new(nginx_binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("nginx (apt-get install nginx)");
        tokio::time::timeout(DEADLINE, async move {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("nginx listens in time");
        Self {
            addr: ([127, 0, 0, 1], port).into(),
            child,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| "nginx".into())
}

/// Open WebSockets of a node, from its metrics.
async fn sockets_of(node: SocketAddr) -> u64 {
    metric_of(node, "protokoll_connections_open").await
}

/// A plain (unlabelled) metric of a node, or one series of it (`name`
/// with its labels, as `/metrics` writes them).
pub(crate) async fn metric_of(node: SocketAddr, name: &str) -> u64 {
    let text = reqwest::get(format!("http://{node}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| v.trim().parse::<f64>().unwrap() as u64)
        .unwrap_or(0)
}

/// Polls `check` (each poll is a real request) until it holds.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn ready(node: SocketAddr) -> Option<u16> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    client
        .get(format!("http://{node}/readyz"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// The whole site: Postgres, Redis, three nodes, nginx.
pub(crate) struct Site {
    pub(crate) pg: Postgres,
    pub(crate) redis: Redis,
    pub(crate) db: TestDb,
    pub(crate) nodes: Vec<Option<ProcessServer>>,
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) nginx: Nginx,
}

impl Site {
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// The site with `extra` arguments for every node.
    pub(crate) async fn start_with(extra: &[&str]) -> Self {
        let pg = Postgres::start();
        {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&pg.url("postgres"))
                .await
                .unwrap();
            sqlx::query("CREATE DATABASE protokoll")
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let db = TestDb::external(pg.url("protokoll"));
        // Migrations run once before the nodes start.
        db.database().await.close().await;
        let redis = Redis::start().await;
        let stderr = || {
            if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            }
        };
        let redis_url = redis.url();
        let mut nodes = Vec::new();
        for i in 0..3 {
            // The last one is started the way units and manifests write
            // it: flags after `serve`.
            let mut args: Vec<&str> = if i == 2 {
                vec!["serve", "--redis-url", &redis_url]
            } else {
                vec!["--redis-url", &redis_url]
            };
            args.extend_from_slice(extra);
            nodes.push(Some(
                ProcessServer::start_command(&db, &[], &args, stderr(), "info").await,
            ));
        }
        let addrs: Vec<SocketAddr> = nodes.iter().flatten().map(|n| n.addr).collect();
        let nginx = Nginx::start(&addrs).await;
        Self {
            pg,
            redis,
            db,
            nodes,
            addrs,
            nginx,
        }
    }

    pub(crate) async fn database(&self) -> Database {
        self.db.database().await
    }

    /// Waits until every running node's Redis subscription is `up` (or
    /// down), as its metrics say.
    pub(crate) async fn subscribed(&self, up: bool) {
        for (i, node) in self.addrs.iter().enumerate() {
            if self.nodes[i].is_none() {
                continue;
            }
            let node = *node;
            eventually("every node's Redis subscription", || async move {
                metric_of(node, "protokoll_cluster_redis_connected").await == u64::from(up)
            })
            .await;
        }
    }

    /// Stops every node (SIGTERM).
    pub(crate) async fn stop(mut self) {
        for node in self.nodes.iter_mut() {
            if let Some(node) = node.take() {
                node.terminate().await;
            }
        }
    }

    /// Connects through nginx and says which node it landed on (the one
    /// whose open sockets went up).
    async fn connect(&self, meeting: MeetingId, token: &str) -> (Client, usize) {
        let mut before = Vec::new();
        for (i, addr) in self.addrs.iter().enumerate() {
            if self.nodes[i].is_some() {
                before.push(sockets_of(*addr).await);
            } else {
                before.push(0);
            }
        }
        let client = Client::synced(self.nginx.addr, meeting, token).await;
        let started = Instant::now();
        loop {
            for (i, addr) in self.addrs.iter().enumerate() {
                if self.nodes[i].is_some() && sockets_of(*addr).await > before[i] {
                    return (client, i);
                }
            }
            assert!(started.elapsed() < DEADLINE, "the socket shows on no node");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Reads from every client in turn until `done` holds for all of them.
async fn all_until(clients: &mut [Client], what: &str, done: impl Fn(&Client) -> bool) {
    let started = Instant::now();
    while !clients.iter().all(&done) {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        for client in clients.iter_mut() {
            let _ = tokio::time::timeout(Duration::from_millis(20), client.step()).await;
            assert!(
                client.closed.is_none(),
                "{:?} while waiting for {what}",
                client.closed
            );
        }
    }
}

fn paragraphs_with(client: &Client, root: &str, text: &str) -> bool {
    client.section(root).contains(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_behind_nginx_converge_and_survive_faults() {
    init_logs();
    let mut site = Site::start().await;
    let db = site.database().await;
    let (meeting, scribe) = writable_meeting(&db, "Klustret").await;
    let m = meeting.id;
    for node in site.addrs.clone() {
        eventually("every node subscribed to Redis", || async move {
            metric_of(node, "protokoll_cluster_redis_connected").await == 1
        })
        .await;
    }

    // 1. Clients of one meeting land on different nodes and converge
    //    live, presence included.
    let mut clients = Vec::new();
    let mut on = Vec::new();
    for _ in 0..3 {
        let (client, node) = site.connect(m, &scribe).await;
        clients.push(client);
        on.push(node);
    }
    let mut nodes_used = on.clone();
    nodes_used.sort_unstable();
    assert_eq!(nodes_used, vec![0, 1, 2], "nginx spreads the sockets");
    for (i, text) in ["från ett", "från två", "från tre"].iter().enumerate() {
        clients[i].write("section:polis", text).await;
    }
    for client in &mut clients {
        client
            .until("every node's update", |c| {
                ["från ett", "från två", "från tre"]
                    .iter()
                    .all(|t| paragraphs_with(c, "section:polis", t))
            })
            .await;
    }
    clients[1]
        .set_presence(r##"{"user":{"name":"Förfalskat","color":"#aa3355"},"cursor":null}"##)
        .await;
    let speaker = clients[1].client_id();
    for i in [0, 2] {
        clients[i]
            .until("presence from another node", |c| {
                c.presence
                    .get(&speaker)
                    .is_some_and(|p| p.contains("scribe (test)") && p.contains("#aa3355"))
            })
            .await;
    }

    // 2. Redis stopped for 10 s: the nodes converge meanwhile by reading
    //    the log, and after it is back through Redis again.
    site.redis.stop().await;
    let outage = Instant::now();
    let mut round = 0;
    let mut slowest = Duration::ZERO;
    while outage.elapsed() < Duration::from_secs(10) || round < 3 {
        let writer = round % 3;
        let text = format!("utan redis {round}");
        let sent = Instant::now();
        clients[writer].write("section:skola", &text).await;
        for client in &mut clients {
            client
                .until("an update while Redis is down", |c| {
                    paragraphs_with(c, "section:skola", &text)
                })
                .await;
        }
        slowest = slowest.max(sent.elapsed());
        round += 1;
    }
    assert!(
        slowest < Duration::from_secs(5),
        "converged within seconds without Redis (slowest {slowest:?})"
    );
    site.redis.start_again().await;
    let back = Instant::now();
    clients[0].write("section:skola", "redis tillbaka").await;
    for client in &mut clients {
        client
            .until("an update after Redis is back", |c| {
                paragraphs_with(c, "section:skola", "redis tillbaka")
            })
            .await;
    }
    eprintln!(
        "figure: redis outage: slowest convergence {slowest:?}, first update after its return {:?}",
        back.elapsed()
    );
    for node in site.addrs.clone() {
        eventually("every node subscribed to Redis again", || async move {
            metric_of(node, "protokoll_cluster_redis_connected").await == 1
        })
        .await;
    }

    // 5. A token revoked on one node closes that person's sockets on all
    //    nodes within a second; a section reassigned on one node is
    //    enforced on connections to the others.
    let (member, member_token) = user_with_token(&db, "member", false).await;
    db.dir
        .set_participant(m, member.id, Role::Member)
        .await
        .unwrap();
    let as_scribe = bearer_client(&scribe);
    // Added through one node: every node takes the new ownership.
    let added = as_scribe
        .post(format!("http://{}/api/meetings/{m}/agenda", site.addrs[2]))
        .json(&json!({"id": "tilldelad", "title": "Tilldelad",
            "owner": {"kind": "user", "user_id": member.id}}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let mut sockets = Vec::new();
    for addr in &site.addrs {
        sockets.push(Client::synced(*addr, m, &member_token).await);
    }
    // Written on node 1 and seen through node 3: the section is the
    // member's (read from the database by each node).
    sockets[0]
        .write("section:tilldelad", "medlemmens text")
        .await;
    for socket in &mut sockets[1..] {
        socket
            .until("the member's text", |c| {
                paragraphs_with(c, "section:tilldelad", "medlemmens text")
            })
            .await;
    }
    let seen = sockets[1].broadcasts.len();
    let reassigned = as_scribe
        .patch(format!(
            "http://{}/api/meetings/{m}/agenda/tilldelad",
            site.addrs[0]
        ))
        .json(&json!({"owner": {"kind": "secretary"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(reassigned.status(), 200);
    // The agenda change reaches node 2's clients only after node 2 took
    // the new ownership.
    sockets[1]
        .until("the agenda change", |c| c.broadcasts.len() > seen)
        .await;
    sockets[1]
        .write("section:tilldelad", "inte längre min")
        .await;
    let (code, reason) = sockets[1].closed_by_server().await;
    assert_eq!(code, 4403, "refused on another node: {reason}");
    sockets.remove(1);
    let as_member = bearer_client(&member_token);
    let tokens: Value = get_json(
        &as_member,
        format!("http://{}/api/me/tokens", site.addrs[1]),
    )
    .await;
    let token_id = tokens
        .as_array()
        .and_then(|t| t.first())
        .and_then(|t| t["id"].as_str())
        .expect("the member's token")
        .to_owned();
    let revoked_at = Instant::now();
    let revoked = as_member
        .delete(format!("http://{}/api/me/tokens/{token_id}", site.addrs[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    for socket in &mut sockets {
        let (code, _) = socket.closed_by_server().await;
        assert_eq!(code, 4401);
    }
    let took = revoked_at.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "revocation closed the sockets on every node in {took:?}"
    );

    // 6. A meeting locked through one node refuses updates on all.
    let (locked_meeting, _) = writable_meeting(&db, "Låses").await;
    let l = locked_meeting.id;
    let (chair, _) = user_with_token(&db, "chair", false).await;
    db.dir
        .set_participant(l, chair.id, Role::Chair)
        .await
        .unwrap();
    let mut writers = Vec::new();
    for addr in &site.addrs[1..] {
        let mut writer = Client::synced(*addr, l, &scribe).await;
        writer.write("section:polis", "före låset").await;
        writers.push(writer);
    }
    for writer in &mut writers {
        writer
            .until("both texts", |c| {
                c.section("section:polis").matches("före låset").count() == 2
            })
            .await;
    }
    let lock = as_scribe
        .post(format!(
            "http://{}/api/meetings/{l}/protocol/lock",
            site.addrs[0]
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(lock.status(), 200, "{}", lock.text().await.unwrap());
    for writer in &mut writers {
        let seen = writer.broadcasts.len();
        writer
            .until("the lock, announced live", |c| c.broadcasts.len() > seen)
            .await;
        writer.write("section:polis", "efter låset").await;
        let (code, _) = writer.closed_by_server().await;
        assert_eq!(code, 4423);
    }
    let stored = stored_doc(&db.docs, l).await;
    assert!(!crate::helpers::fragment_text(&stored, "section:polis").contains("efter låset"));

    // 3. A node killed with SIGKILL mid-typing: nothing that was broadcast
    //    is lost; its clients reconnect through nginx and resync.
    let victim = on[0];
    let typist = 0;
    let observers: Vec<usize> = (0..3).filter(|i| *i != typist).collect();
    for i in 0..20 {
        clients[typist]
            .write("section:brand", &format!("skrivet {i}"))
            .await;
    }
    site.nodes[victim].take().unwrap().kill().await;
    let mut seen_before = Vec::new();
    for &o in &observers {
        // What an observer had received when the node died must survive.
        seen_before.push(clients[o].section("section:brand"));
    }
    let (code, _) = clients[typist].closed_by_server().await;
    assert_ne!(code, 4401);
    let state = crate::helpers::full_state(&clients[typist].doc);
    let mut typist_again = Client::resume(site.nginx.addr, m, &scribe, &state).await;
    typist_again.until("resynced", |c| c.synced).await;
    clients[typist] = typist_again;
    for client in &mut clients {
        client
            .until("all twenty after the kill", |c| {
                (0..20).all(|i| paragraphs_with(c, "section:brand", &format!("skrivet {i}")))
            })
            .await;
    }
    let stored = stored_doc(&db.docs, m).await;
    let stored_brand = crate::helpers::fragment_text(&stored, "section:brand");
    for before in &seen_before {
        for i in 0..20 {
            let text = format!("skrivet {i}");
            if before.contains(&text) {
                assert!(
                    stored_brand.contains(&text),
                    "{text} was broadcast and is stored"
                );
            }
        }
    }

    // 4. Postgres stopped and restarted while two people type (y-websocket
    //    clients through nginx): updates are refused cleanly (the sockets
    //    stay), the nodes report not ready, nothing accepted is lost, they
    //    recover by themselves, and nothing typed through it is lost or
    //    refused (issue 23: keystrokes sent before a client's sync step 2
    //    delivered the ones the store could not take wait for them).
    let live: Vec<SocketAddr> = site.nodes.iter().flatten().map(|n| n.addr).collect();
    let (second, second_token) = user_with_token(&db, "scribe2", false).await;
    db.dir
        .set_participant(m, second.id, Role::Secretary)
        .await
        .unwrap();
    let through_nginx = format!("ws://{}/sync", site.nginx.addr);
    let mut typists = vec![
        Typist::start(&through_nginx, m, "section:w0", &scribe).await,
        Typist::start(&through_nginx, m, "section:w1", &second_token).await,
    ];
    // The durations are the scenario: typing before, through and after.
    tokio::time::sleep(Duration::from_millis(500)).await;
    site.pg.stop("fast");
    for node in &live {
        eventually("not ready without Postgres", || async {
            ready(*node).await == Some(503)
        })
        .await;
    }
    clients[1].write("section:typing", "under avbrottet").await;
    clients[1]
        .until("the refusal", |c| c.permission_denied.is_some())
        .await;
    let refusal = clients[1].permission_denied.clone().unwrap();
    assert!(refusal.contains("storage unavailable"), "{refusal}");
    assert!(clients[1].closed.is_none(), "the socket stays open");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    site.pg.start_again();
    for node in &live {
        eventually("ready again", || async { ready(*node).await == Some(200) }).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut typed = Vec::new();
    for typist in &mut typists {
        typed.push(typist.stop().await);
    }
    for t in &typed {
        assert!(
            t.closes.iter().all(|c| !(4400..4500).contains(c)),
            "nobody is refused: {t:?}"
        );
        assert!(t.text.len() >= 100, "typed all along: {t:?}");
    }
    // Each typist's paragraph, whole (after the empty one the agenda
    // change above gave every never-written section).
    let typed_paragraphs: Vec<String> = typed
        .iter()
        .map(|t| format!("<paragraph>{}</paragraph>", t.text))
        .collect();
    // Every client reads meanwhile, as browsers do: the writer answers the
    // node's request for what it lacks.
    all_until(
        &mut clients,
        "the refused update, sent again after recovery",
        |c| paragraphs_with(c, "section:typing", "under avbrottet"),
    )
    .await;
    clients[2].write("section:typing", "efter avbrottet").await;
    for client in &mut clients {
        client
            .until("an update after recovery", |c| {
                paragraphs_with(c, "section:typing", "efter avbrottet")
            })
            .await;
    }
    all_until(&mut clients, "everything typed through the restart", |c| {
        c.section("section:w0").ends_with(&typed_paragraphs[0])
            && c.section("section:w1").ends_with(&typed_paragraphs[1])
    })
    .await;
    let db = site.database().await;
    let stored = stored_doc(&db.docs, m).await;
    for (root, typed) in ["section:w0", "section:w1"].iter().zip(&typed_paragraphs) {
        let stored_text = crate::helpers::fragment_text(&stored, root);
        assert!(stored_text.ends_with(typed), "{root}: {stored_text}");
    }
    for typist in typists {
        typist.finish().await;
    }
    for (root, text) in [
        ("section:polis", "från tre"),
        ("section:skola", "redis tillbaka"),
        ("section:brand", "skrivet 19"),
        ("section:typing", "under avbrottet"),
        ("section:typing", "efter avbrottet"),
    ] {
        assert!(
            crate::helpers::fragment_text(&stored, root).contains(text),
            "{text} is stored"
        );
    }
    for client in clients {
        client.close().await;
    }
    for node in site.nodes.iter_mut() {
        if let Some(node) = node.take() {
            node.terminate().await;
        }
    }
}

/// Two nodes appending to one meeting at once get positions 1..=n without
/// holes or repeats, a position becomes visible only after every smaller
/// one of its meeting, and compaction keeps what no snapshot covers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_positions_commit_in_order_per_meeting() {
    use crate::helpers::{Backend, create_meeting};
    use bytes::Bytes;
    use protokoll::store::{self, AppendBatch};
    init_logs();
    let db = TestDb::new(Backend::Postgres).await;
    let a = store::connect(&db.url).await.unwrap();
    let b = store::connect(&db.url).await.unwrap();
    let meeting = create_meeting(&a, "Ordning").await.id;
    let update = {
        let doc = yrs::Doc::new();
        let mut txn = yrs::Transact::transact_mut(&doc);
        let text = yrs::WriteTxn::get_or_insert_text(&mut txn, "t");
        yrs::Text::insert(&text, &mut txn, 0, "x");
        txn.encode_update_v1()
    };
    let append = |store: Database, n: usize| {
        let update = update.clone();
        tokio::spawn(async move {
            let mut lasts = Vec::new();
            for _ in 0..n {
                let batch = AppendBatch {
                    meeting,
                    updates: vec![Bytes::from(update.clone()), Bytes::from(update.clone())],
                };
                lasts.push(store.docs.append_updates(&[batch]).await.unwrap()[0]);
            }
            lasts
        })
    };
    let (from_a, from_b) = tokio::join!(append(a.clone(), 50), append(b.clone(), 50));
    let mut lasts: Vec<i64> = from_a.unwrap().into_iter().chain(from_b.unwrap()).collect();
    lasts.sort_unstable();
    assert_eq!(lasts, (1..=100).map(|i| i * 2).collect::<Vec<_>>());
    let stored = a.docs.load_document(meeting).await.unwrap();
    let positions: Vec<i64> = stored.updates.iter().map(|(s, _)| *s).collect();
    assert_eq!(positions, (1..=200).collect::<Vec<_>>());

    // A writer that has taken its position but not committed holds back
    // the next writer of the meeting: a reader never sees 202 without 201.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut slow = pool.begin().await.unwrap();
    let taken: i64 = sqlx::query_scalar(
        "INSERT INTO doc_updates (meeting_id, data) VALUES ($1, $2) RETURNING mseq",
    )
    .bind(meeting.as_uuid())
    .bind(&update)
    .fetch_one(&mut *slow)
    .await
    .unwrap();
    assert_eq!(taken, 201);
    let batch = AppendBatch {
        meeting,
        updates: vec![Bytes::from(update.clone())],
    };
    let b_docs = b.docs.clone();
    let mut next = tokio::spawn(async move { b_docs.append_updates(&[batch]).await.unwrap()[0] });
    // The second writer is waiting for the first one's row lock; the log
    // a reader sees ends at 200 until the first one commits.
    eventually("the second writer to wait for the lock", || {
        let pool = pool.clone();
        async move {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            waiting > 0
        }
    })
    .await;
    assert!(futures::FutureExt::now_or_never(&mut next).is_none());
    let seen = a.docs.load_after(meeting, 200).await.unwrap();
    assert!(seen.updates.is_empty(), "nothing past 200 is visible yet");
    slow.commit().await.unwrap();
    assert_eq!(next.await.unwrap(), 202);
    let seen = a.docs.load_after(meeting, 200).await.unwrap();
    let positions: Vec<i64> = seen.updates.iter().map(|(s, _)| *s).collect();
    assert_eq!(positions, vec![201, 202]);

    // A snapshot up to 50 (one node's), compaction asked up to 150 (the
    // other's belief): only what the snapshot covers goes.
    a.docs.write_snapshot(meeting, &update, 50).await.unwrap();
    b.docs.compact_log(meeting, 150).await.unwrap();
    let stored = b.docs.load_document(meeting).await.unwrap();
    assert_eq!(stored.snapshot.as_ref().map(|s| s.upto), Some(50));
    assert_eq!(stored.updates.first().map(|(s, _)| *s), Some(51));
    assert_eq!(a.docs.log_len(meeting).await.unwrap(), 152);
    let heads = a.docs.log_heads(&[meeting]).await.unwrap();
    assert_eq!(heads, vec![(meeting, 202)]);
    a.close().await;
    b.close().await;
}

/// Redis without Postgres is refused with a clear error: a SQLite file
/// belongs to one node.
#[test]
fn redis_with_sqlite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Cli::bare()
        .arg("--database-url")
        .arg(format!("sqlite:{}", dir.path().join("p.db").display()))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(["--redis-url", "redis://127.0.0.1:1/"])
        .run();
    assert!(!out.ok);
    let stderr = out.stderr;
    assert!(stderr.contains("needs a Postgres database"), "{stderr}");
    assert!(
        !dir.path().join("p.db").exists(),
        "refused before touching the database"
    );
}

/// The paragraphs' texts of a section as a client holds it.
fn paragraph_texts(client: &Client, root: &str) -> Vec<String> {
    client
        .section(root)
        .split("</paragraph>")
        .filter_map(|p| p.strip_prefix("<paragraph>"))
        .map(str::to_owned)
        .collect()
}

/// Issue 23, defect 3: a meeting locked through one node while two people
/// type on the other two, with a watcher on each writer's node that keeps
/// asking for what it lacks (sync step 1, as a reconnecting or resyncing
/// client does). The writers' nodes learn of the lock when the database
/// refuses their next append: what they applied in that batch is refused,
/// and no watcher may receive any of it, not in a broadcast and not in the
/// sync step 2 answering its own step 1. After each lock every watcher's
/// document is exactly the locked protocol; then the protocol is reopened
/// and the next round begins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_lock_across_nodes_no_watcher_receives_a_refused_keystroke() {
    use crate::finalise::{BEFORE_LOCK, protocol_state, section_texts, type_until_closed};
    use yrs::{ReadTxn, Transact};

    const ROUNDS: usize = 10;
    init_logs();
    let site = Site::start().await;
    let db = site.database().await;
    let (meeting, scribe) = writable_meeting(&db, "Låses om och om igen").await;
    let m = meeting.id;
    let (chair, _) = user_with_token(&db, "chair", false).await;
    db.dir
        .set_participant(m, chair.id, Role::Chair)
        .await
        .unwrap();
    for node in site.addrs.clone() {
        eventually("every node subscribed to Redis", || async move {
            metric_of(node, "protokoll_cluster_redis_connected").await == 1
        })
        .await;
    }
    let as_scribe = bearer_client(&scribe);
    let api = |path: &str| format!("http://{}/api/meetings/{m}/{path}", site.addrs[0]);
    let mut watchers = vec![
        Client::synced(site.addrs[1], m, &scribe).await,
        Client::synced(site.addrs[2], m, &scribe).await,
    ];
    for round in 0..ROUNDS {
        let (started, mut all_started) = tokio::sync::mpsc::channel(2);
        let mut writers = Vec::new();
        for (node, root) in [(1, "w0"), (2, "w1")] {
            let writer = Client::synced(site.addrs[node], m, &scribe).await;
            writers.push(tokio::spawn(type_until_closed(
                writer,
                root,
                started.clone(),
            )));
        }
        // Each watcher asks for what it lacks over and over, reading what
        // comes, until the lock has been answered.
        let locked = tokio_util::sync::CancellationToken::new();
        let mut asking = Vec::new();
        for mut watcher in watchers.drain(..) {
            let locked = locked.clone();
            asking.push(tokio::spawn(async move {
                while !locked.is_cancelled() {
                    let sv = watcher.doc.transact().state_vector();
                    watcher
                        .send_raw(protokoll::sync::protocol::encode_sync_step_1(&sv))
                        .await;
                    let _ = tokio::time::timeout(Duration::from_millis(2), watcher.step()).await;
                    assert!(watcher.closed.is_none(), "{:?}", watcher.closed);
                }
                watcher
            }));
        }
        for _ in 0..2 {
            tokio::time::timeout(DEADLINE, all_started.recv())
                .await
                .expect("the writers type")
                .expect("a writer started");
        }
        let lock = as_scribe
            .post(api("protocol/lock"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            lock.status(),
            200,
            "round {round}: {}",
            lock.text().await.unwrap()
        );
        locked.cancel();
        for task in asking {
            watchers.push(task.await.unwrap());
        }
        for writer in writers {
            let (sent, client) = writer.await.unwrap();
            assert!(sent.len() >= BEFORE_LOCK);
            assert_eq!(client.closed.map(|c| c.0), Some(4423), "round {round}");
        }

        let canonical: Value = get_json(&as_scribe, api("protocol.json")).await;
        let stored = stored_doc(&db.docs, m).await;
        let stored_sv = stored.transact().state_vector();
        for watcher in &mut watchers {
            watcher
                .until("everything stored, and the lock", |w| {
                    let sv = w.doc.transact().state_vector();
                    stored_sv.iter().all(|(c, k)| sv.get(c) >= *k)
                        && protocol_state(w).as_deref() == Some("locked")
                })
                .await;
            // One more round trip through the watcher's room: whatever the
            // room queued for it before has arrived.
            watcher.synced = false;
            let sv = watcher.doc.transact().state_vector();
            watcher
                .send_raw(protokoll::sync::protocol::encode_sync_step_1(&sv))
                .await;
            watcher.until("the answer", |w| w.synced).await;
            assert_eq!(
                watcher.doc.transact().state_vector(),
                stored_sv,
                "round {round}: the watcher holds exactly what was stored, nothing refused"
            );
            for root in ["w0", "w1"] {
                assert_eq!(
                    paragraph_texts(watcher, &format!("section:{root}")),
                    section_texts(&canonical, root),
                    "round {round}: {root} as the watcher holds it is the locked protocol's"
                );
            }
        }

        let reopen = as_scribe
            .post(api("protocol/reopen"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            reopen.status(),
            200,
            "round {round}: {}",
            reopen.text().await.unwrap()
        );
        for watcher in &mut watchers {
            watcher
                .until("the reopening", |w| {
                    protocol_state(w).as_deref() == Some("draft")
                })
                .await;
        }
    }
    for watcher in watchers {
        watcher.close().await;
    }
    for node in site.nodes.into_iter().flatten() {
        node.terminate().await;
    }
}
