//! Security hardening (issue 10), tried as an attacker would, over real
//! sockets: concurrent sign-ins, forged `X-Forwarded-For`, padded
//! usernames, socket floods under a low open-file limit, invitations that
//! outlive their sender's rights, agencies and meetings created by whoever,
//! tokens that outlive a password reset, tokens in URLs, and names that
//! display as something else.

use std::{
    collections::HashMap,
    process::Stdio,
    time::{Duration, Instant},
};

use futures::{StreamExt, future::join_all};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::{fixture::*, helpers::*};
use protokoll::{
    auth::throttle::MAX_FAILURES,
    config::ServerConfig,
    people::{AgencyId, Role, User, Username},
    store::Database,
};

async fn password_user(db: &Database, username: &str, agency: Option<AgencyId>) -> User {
    crate::fixture::password_user(db, username, &format!("{username} (test)"), agency).await
}

struct SignIn {
    status: StatusCode,
    retry_after: bool,
    code: String,
    cookie: Option<String>,
}

async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> SignIn {
    let mut request = http
        .post(format!("{base}/api/login"))
        .json(&json!({ "username": username, "password": password }));
    if let Some(xff) = forwarded_for {
        request = request.header("x-forwarded-for", xff);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let retry_after = response.headers().contains_key("retry-after");
    let cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    SignIn {
        status,
        retry_after,
        code: body["error"]["code"].as_str().unwrap_or("").to_owned(),
        cookie,
    }
}

fn quiet() -> Stdio {
    if std::env::var_os("TEST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket; `Err((status, has Retry-After))` if the upgrade is
/// refused. Fails the test if the server does not answer at all.
async fn open_socket(url: &str) -> Result<Ws, (u16, bool)> {
    match tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::connect_async(url),
    )
    .await
    {
        Err(_) => panic!("the server did not answer a WebSocket upgrade within 15 s"),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(response))) => Err((
            response.status().as_u16(),
            response.headers().contains_key("retry-after"),
        )),
        Ok(Err(e)) => panic!("WebSocket upgrade failed: {e}"),
    }
}

/// Reads until the server closes; returns the close code and reason.
async fn first_close(ws: &mut Ws) -> (u16, String) {
    tokio::time::timeout(DEADLINE, async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Close(frame)) => {
                    return frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                }
                Ok(_) => continue,
                Err(e) => return (1006, e.to_string()),
            }
        }
        (1006, "ended without a close frame".into())
    })
    .await
    .expect("the server closes in time")
}

/// A council: the Polis agency, one meeting, a (non-admin) secretary, a
/// member and an outsider, each with an API token; the server's admin.
const PLAN: Plan = Plan {
    title: "Lokala Brå",
    writable: false,
    agencies: &["Polis"],
    sections: &[],
    people: &[
        Person::new("secretary", Some(Role::Secretary)),
        Person::new("member", Some(Role::Member)),
        Person::new("outsider", None),
    ],
};

impl Council {
    async fn invite_with(&self, who: &str, body: Value) -> reqwest::Response {
        self.client(who)
            .post(self.url("/api/meetings/{m}/invitations"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn accept_link(&self, secret: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url(&format!("/api/invitations/{secret}/accept")))
            .json(&json!({ "password": "nyans eget lösenord" }))
            .send()
            .await
            .unwrap()
    }
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

// ---- 1. concurrent sign-ins ------------------------------------------------

/// 150 concurrent guesses at one account get at most five password checks;
/// 240 concurrent sign-ins to distinct accounts from distinct addresses are
/// bounded by the hasher (fast 503s); the server's memory stays put.
async fn concurrent_sign_ins_are_throttled_before_hashing_and_memory_stays_bounded(
    backend: Backend,
) {
    let db = TestDb::new(backend).await;
    let database = db.database().await;
    password_user(&database, "skola", None).await;
    password_user(&database, "polis", None).await;
    database.close().await;
    let server = ProcessServer::start_command(
        &db,
        &[],
        &["--trusted-proxies", "127.0.0.1,::1"],
        quiet(),
        "warn",
    )
    .await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    // One sign-in first, so that the hashing pool holds its first buffer.
    let warm = sign_in(&http, &base, "polis", PASSWORD, Some("198.51.100.250")).await;
    assert_eq!(warm.status, 200);
    let rss_before = proc_status_kib(server.pid(), "VmRSS");

    let guesses = join_all((0..150).map(|i| {
        let (http, base) = (&http, &base);
        async move {
            sign_in(
                http,
                base,
                "skola",
                &format!("gissning nummer {i}"),
                Some("203.0.113.10"),
            )
            .await
        }
    }))
    .await;
    // Distinct accounts from distinct addresses pass the throttle; the
    // hasher runs one per core, queues a few and turns the rest away.
    let spread = join_all((0..240).map(|i| {
        let (http, base) = (&http, &base);
        async move {
            sign_in(
                http,
                base,
                &format!("konto{i}"),
                "fel lösenord igen",
                Some(&format!("198.51.100.{}", i + 1)),
            )
            .await
        }
    }))
    .await;
    let rss_after = proc_status_kib(server.pid(), "VmRSS");
    let peak = proc_status_kib(server.pid(), "VmHWM");
    let count = |list: &[SignIn], status: u16| list.iter().filter(|s| s.status == status).count();
    let busy = count(&spread, 503);
    eprintln!(
        "server RSS: {} MiB before, {} MiB after 390 concurrent sign-ins (peak {} MiB); \
         one account: {} checked, {} throttled; 240 accounts: {busy} answered 503",
        rss_before / 1024,
        rss_after / 1024,
        peak / 1024,
        count(&guesses, 401),
        count(&guesses, 429),
    );

    assert!(
        count(&guesses, 401) <= MAX_FAILURES,
        "at most {MAX_FAILURES} guesses may reach the password check, {} did",
        count(&guesses, 401)
    );
    assert_eq!(
        count(&guesses, 429) + count(&guesses, 401),
        guesses.len(),
        "every other guess is throttled"
    );
    assert!(
        guesses
            .iter()
            .filter(|s| s.status == 429)
            .all(|s| s.retry_after && s.code == "too_many_attempts")
    );
    let right = sign_in(&http, &base, "skola", PASSWORD, Some("203.0.113.10")).await;
    assert_eq!(right.status, 429, "even the right password waits");

    assert_eq!(busy + count(&spread, 401), spread.len());
    assert!(busy > 0, "a full hashing queue answers 503 at once");
    assert!(
        spread
            .iter()
            .filter(|s| s.status == 503)
            .all(|s| s.retry_after && s.code == "busy")
    );
    assert!(
        rss_after.saturating_sub(rss_before) < 96 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert!(
        peak.saturating_sub(rss_before) < 160 * 1024,
        "RSS peaked at {peak} KiB (from {rss_before} KiB)"
    );
    // The server still signs people in.
    let after = sign_in(&http, &base, "polis", PASSWORD, Some("198.51.100.251")).await;
    assert_eq!(after.status, 200);
    server.kill().await;
}

// ---- 2. client addresses behind a proxy -------------------------------------

/// Runs `n` sign-ins ten at a time: concurrent, but within what the
/// hashing queue admits on a two-core machine.
async fn in_batches<F: std::future::Future<Output = SignIn>>(
    n: usize,
    attempt: impl Fn(usize) -> F,
) -> Vec<SignIn> {
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(10) {
        out.extend(join_all((start..(start + 10).min(n)).map(&attempt)).await);
    }
    out
}

async fn behind_a_trusted_proxy_each_client_is_throttled_on_its_own(backend: Backend) {
    let db = TestDb::new(backend).await;
    let database = db.database().await;
    password_user(&database, "anna", None).await;
    database.close().await;
    let log_path = tempfile::NamedTempFile::new().unwrap();
    let log_file = std::fs::File::create(log_path.path()).unwrap();
    let server = ProcessServer::start_command(
        &db,
        &[],
        &[
            "--trusted-proxies",
            "127.0.0.1, ::1",
            "--log-format",
            "json",
        ],
        Stdio::from(log_file),
        "warn,protokoll=info,tower_http=debug",
    )
    .await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    // What nginx sends for a client at 203.0.113.66 that claims, in its
    // own X-Forwarded-For, to be 198.51.100.99.
    let attacker = "198.51.100.99, 203.0.113.66";
    let failures = in_batches(protokoll::auth::throttle::MAX_FAILURES_PER_IP, |i| {
        let (http, base) = (&http, &base);
        async move {
            sign_in(
                http,
                base,
                &format!("gissa{i}"),
                "fel lösenord",
                Some(attacker),
            )
            .await
        }
    })
    .await;
    assert!(
        failures.iter().all(|s| s.status == 401),
        "{:?}",
        failures.iter().map(|s| s.status).collect::<Vec<_>>()
    );
    let locked = sign_in(
        &http,
        &base,
        "anna",
        PASSWORD,
        Some("198.51.100.7, 203.0.113.66"),
    )
    .await;
    assert_eq!(
        locked.status, 429,
        "the attacker's address is locked, whatever it claims"
    );
    let neighbour = sign_in(&http, &base, "anna", PASSWORD, Some("198.51.100.7")).await;
    assert_eq!(
        neighbour.status, 200,
        "another client behind the same proxy is not locked out"
    );
    assert!(server.terminate().await.success());
    let log = std::fs::read_to_string(log_path.path()).unwrap();
    assert!(
        log.contains(r#""client":"203.0.113.66""#),
        "log names the client:\n{log}"
    );
    assert!(
        log.contains(r#""client":"198.51.100.7""#),
        "log names the client:\n{log}"
    );
    assert!(
        !log.contains("198.51.100.99"),
        "a client's own claim is not believed"
    );

    // Without trusted proxies the header is ignored: varying it does not
    // escape the per-address limit.
    let server = ProcessServer::start(&db).await;
    let base = format!("http://{}", server.addr);
    let failures = in_batches(protokoll::auth::throttle::MAX_FAILURES_PER_IP, |i| {
        let (http, base) = (&http, &base);
        async move {
            let xff = format!("203.0.113.{}", i + 1);
            sign_in(http, base, &format!("gissa{i}"), "fel lösenord", Some(&xff)).await
        }
    })
    .await;
    assert!(failures.iter().all(|s| s.status == 401));
    let next = sign_in(&http, &base, "anna", PASSWORD, Some("203.0.113.200")).await;
    assert_eq!(
        next.status, 429,
        "X-Forwarded-For from an untrusted peer is ignored"
    );
    server.kill().await;
}

// ---- 3. usernames ---------------------------------------------------------

async fn padded_or_lookalike_usernames_are_one_name_everywhere(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = Council::start_on(&db, test_config(), &PLAN).await;
    password_user(&c.server.db, "skola", None).await;
    password_user(&c.server.db, "polis", None).await;
    let base = format!("http://{}", c.server.addr);
    let http = reqwest::Client::new();
    let variants = [
        "skola ",
        "\u{a0}skola",
        "\tskola",
        "skola\u{3000}",
        "ｓｋｏｌａ",
        " SKOLA\u{2003}",
    ];
    // Each variant is the same account: it signs in with the password.
    for variant in variants {
        let polis_variant = variant
            .replace("skola", "polis")
            .replace("ｓｋｏｌａ", "ｐｏｌｉｓ")
            .replace("SKOLA", "POLIS");
        let response = sign_in(&http, &base, &polis_variant, PASSWORD, None).await;
        assert_eq!(response.status, 200, "{polis_variant:?} signs in as polis");
    }
    // Five failures for "skola", in any spelling, lock every spelling.
    for variant in &variants[..MAX_FAILURES] {
        assert_eq!(
            sign_in(&http, &base, variant, "fel lösenord!", None)
                .await
                .status,
            401
        );
    }
    for variant in ["skola"].iter().chain(&variants) {
        let response = sign_in(&http, &base, variant, PASSWORD, None).await;
        assert_eq!(response.status, 429, "{variant:?} is locked with skola");
    }
    // Account creation folds the same way: a lookalike of a taken name is
    // taken.
    let admin = c.client("admin");
    let taken = admin
        .post(c.url("/api/admin/users"))
        .json(&json!({ "username": "ＰＯＬＩＳ\u{3000}", "display_name": "Falsk", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 409);
    // So do invitations.
    let invited = c
        .invite_with(
            "secretary",
            json!({ "username": "\u{a0}Brand.Berit\u{3000}", "display_name": "Berit", "role": "member" }),
        )
        .await;
    assert_eq!(invited.status(), 201);
    let pending = json_of(
        c.get_raw("secretary", "/api/meetings/{m}/invitations")
            .await,
    )
    .await;
    assert_eq!(pending[0]["username"], "brand.berit");
    c.server.stop().await;
}

// ---- 4. WebSocket caps ------------------------------------------------------

/// The server gets 256 descriptors (64 held back, 192 for WebSockets);
/// one user opens 3x their cap. Health, sign-in and another user's socket
/// still work.
async fn one_user_cannot_take_every_socket(backend: Backend) {
    let db = TestDb::new(backend).await;
    let database = db.database().await;
    let (meeting, scribe_token) = writable_meeting(&database, "Caps").await;
    let (flooder, flood_token) = user_with_token(&database, "flooder", false).await;
    let (other, other_token) = user_with_token(&database, "other", false).await;
    password_user(&database, "anna", None).await;
    for user in [&flooder, &other] {
        database
            .dir
            .set_participant(meeting.id, user.id, Role::Member)
            .await
            .unwrap();
    }
    database.close().await;
    let server =
        ProcessServer::start_command(&db, &["prlimit", "--nofile=256:256"], &[], quiet(), "warn")
            .await;
    let cap = ServerConfig::default().max_sockets_per_user;

    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(Client::synced(server.addr, meeting.id, &flood_token).await);
    }
    for _ in 0..2 * cap {
        let mut ws = open_socket(&sync_url(server.addr, meeting.id, &flood_token))
            .await
            .expect("a socket over the cap is accepted, then closed");
        let (code, reason) = first_close(&mut ws).await;
        assert_eq!(code, 4429, "{reason}");
        assert!(
            reason.contains("too many connections for this user"),
            "{reason}"
        );
    }
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        sign_in(&http, &base, "anna", PASSWORD, None).await.status,
        200
    );
    // Another user's socket works, and the capped user's own sockets are
    // still alive: an edit reaches both.
    let mut others = Client::synced(server.addr, meeting.id, &other_token).await;
    let mut scribe = Client::synced(server.addr, meeting.id, &scribe_token).await;
    scribe.write("section:polis", "fortfarande här").await;
    for client in [&mut others, &mut held[0]] {
        client
            .until("the edit", |c| {
                c.section("section:polis").contains("fortfarande här")
            })
            .await;
    }
    server.kill().await;
}

/// With the per-user and per-address caps lifted, sockets stop short of the
/// descriptor limit (503 with Retry-After) and health and sign-in still
/// answer.
async fn sockets_stop_short_of_the_descriptor_limit(backend: Backend) {
    let db = TestDb::new(backend).await;
    let database = db.database().await;
    let (meeting, _) = writable_meeting(&database, "Descriptors").await;
    let (flooder, flood_token) = user_with_token(&database, "flooder", false).await;
    database
        .dir
        .set_participant(meeting.id, flooder.id, Role::Member)
        .await
        .unwrap();
    password_user(&database, "anna", None).await;
    database.close().await;
    let server = ProcessServer::start_command(
        &db,
        &["prlimit", "--nofile=256:256"],
        &[
            "--max-sockets-per-user",
            "100000",
            "--max-sockets-per-address",
            "100000",
        ],
        quiet(),
        "error",
    )
    .await;
    let url = sync_url(server.addr, meeting.id, &flood_token);
    let mut held = Vec::new();
    let refused = loop {
        assert!(held.len() < 256, "the server never refused a socket");
        match open_socket(&url).await {
            Ok(ws) => held.push(ws),
            Err(refusal) => break refusal,
        }
    };
    assert_eq!(refused, (503, true), "refused with 503 and Retry-After");
    assert_eq!(
        held.len(),
        256 - 64,
        "sockets stop at the limit less the reserve"
    );
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let health = tokio::time::timeout(
        Duration::from_secs(15),
        http.get(format!("{base}/healthz")).send(),
    )
    .await
    .expect("health answers at the limit")
    .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        sign_in(&http, &base, "anna", PASSWORD, None).await.status,
        200
    );
    server.kill().await;
}

// ---- 5. invitations and their sender's rights --------------------------------

async fn invitations_end_when_their_sender_may_no_longer_invite(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = Council::start_on(&db, test_config(), &PLAN).await;
    let issued = c
        .invite_with(
            "secretary",
            json!({ "username": "ny.sekreterare", "display_name": "Ny Sekreterare", "role": "secretary" }),
        )
        .await;
    assert_eq!(issued.status(), 201);
    let first = json_of(issued).await;
    let second = json_of(
        c.invite_with(
            "secretary",
            json!({ "username": "ny.ledamot", "display_name": "Ny Ledamot", "role": "member" }),
        )
        .await,
    )
    .await;

    // The secretary lists them: who, what role, sent by whom; no secret.
    let listed = c
        .get_raw("secretary", "/api/meetings/{m}/invitations")
        .await;
    assert_eq!(listed.status(), 200);
    let text = listed.text().await.unwrap();
    for issued in [&first, &second] {
        assert!(!text.contains(issued["secret"].as_str().unwrap()));
    }
    let listed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["id"], first["id"]);
    assert_eq!(listed[0]["username"], "ny.sekreterare");
    assert_eq!(listed[0]["role"], "secretary");
    assert_eq!(
        listed[0]["created_by"]["id"],
        c.users["secretary"].id.to_string()
    );
    assert!(listed[0]["expires_at"].is_string());
    for (who, status) in [("member", 403), ("outsider", 404)] {
        let refused = c.get_raw(who, "/api/meetings/{m}/invitations").await;
        assert_eq!(refused.status(), status, "{who} lists invitations");
    }

    // Revoking one: its link stops working.
    let revoke = |id: &Value, who: &str| {
        let url = c.url(&format!(
            "/api/meetings/{{m}}/invitations/{}",
            id.as_str().unwrap()
        ));
        let http = c.client(who);
        async move { http.delete(url).send().await.unwrap().status() }
    };
    assert_eq!(revoke(&second["id"], "member").await, 403);
    assert_eq!(revoke(&second["id"], "secretary").await, 204);
    assert_eq!(revoke(&second["id"], "secretary").await, 404);
    assert_eq!(
        c.accept_link(second["secret"].as_str().unwrap())
            .await
            .status(),
        404
    );

    // The secretary is made a member: the invitations they sent end, the
    // one granting the secretary role included.
    let demoted = c
        .client("admin")
        .put(c.url(&format!(
            "/api/meetings/{{m}}/participants/{}",
            c.users["secretary"].id
        )))
        .json(&json!({ "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(demoted.status(), 204);
    let secret = first["secret"].as_str().unwrap();
    let shown = reqwest::get(c.url(&format!("/api/invitations/{secret}")))
        .await
        .unwrap();
    assert_eq!(shown.status(), 404);
    assert_eq!(c.accept_link(secret).await.status(), 404);
    let gone = c
        .server
        .db
        .dir
        .user_by_username(&Username::parse("ny.sekreterare").unwrap())
        .await
        .unwrap();
    assert!(gone.is_none(), "no account was made");

    // A right lost without the API (the CLI, another node) is caught when
    // the invitation is accepted.
    c.server
        .db
        .dir
        .set_participant(c.meeting.id, c.users["secretary"].id, Role::Secretary)
        .await
        .unwrap();
    let third = json_of(
        c.invite_with(
            "secretary",
            json!({ "username": "tredje", "display_name": "Tredje", "role": "chair" }),
        )
        .await,
    )
    .await;
    c.server
        .db
        .dir
        .remove_participant(c.meeting.id, c.users["secretary"].id)
        .await
        .unwrap();
    let refused = c.accept_link(third["secret"].as_str().unwrap()).await;
    assert_eq!(refused.status(), 403);
    let body = json_of(refused).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may no longer invite"),
        "{body}"
    );
    c.server.stop().await;
}

// ---- 6. agencies and meeting creation ----------------------------------------

async fn only_administrators_put_people_in_agencies_or_let_them_create_meetings(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = Council::start_on(&db, test_config(), &PLAN).await;
    let create = |who: &'static str| {
        let http = c.client(who);
        let url = c.url("/api/meetings");
        async move {
            http.post(url)
                .json(&json!({ "title": "Eget möte" }))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let me = |who: &'static str| {
        let http = c.client(who);
        let url = c.url("/api/me");
        async move { json_of(http.get(url).send().await.unwrap()).await }
    };
    assert_eq!(
        create("outsider").await,
        403,
        "a signed-in user may not by default"
    );
    assert_eq!(me("outsider").await["can_create_meetings"], false);
    assert_eq!(me("admin").await["can_create_meetings"], true);
    let grant = |who: &'static str, allowed: bool| {
        let http = c.client(who);
        let url = c.url(&format!("/api/admin/users/{}", c.users["outsider"].id));
        async move {
            http.patch(url)
                .json(&json!({ "can_create_meetings": allowed }))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(grant("secretary", true).await.status(), 403);
    let granted = grant("admin", true).await;
    assert_eq!(granted.status(), 200);
    assert_eq!(json_of(granted).await["can_create_meetings"], true);
    assert_eq!(me("outsider").await["can_create_meetings"], true);
    assert_eq!(create("outsider").await, 201);
    assert_eq!(grant("admin", false).await.status(), 200);
    assert_eq!(create("outsider").await, 403);

    // A secretary may not put anyone in an agency.
    let into_polis = c
        .invite_with(
            "secretary",
            json!({ "username": "fake-polis", "display_name": "Polisen", "agency_id": c.agencies["Polis"], "role": "member" }),
        )
        .await;
    assert_eq!(into_polis.status(), 403);
    let plain = json_of(
        c.invite_with(
            "secretary",
            json!({ "username": "fake-polis", "display_name": "Polisen", "role": "member" }),
        )
        .await,
    )
    .await;
    let accepted = c.accept_link(plain["secret"].as_str().unwrap()).await;
    assert_eq!(accepted.status(), 201);
    assert_eq!(json_of(accepted).await["agency"], Value::Null);
    // An administrator may.
    let real = json_of(
        c.invite_with(
            "admin",
            json!({ "username": "riktig-polis", "display_name": "Kommunpolisen", "agency_id": c.agencies["Polis"], "role": "member" }),
        )
        .await,
    )
    .await;
    let accepted = json_of(c.accept_link(real["secret"].as_str().unwrap()).await).await;
    assert_eq!(accepted["agency"]["name"], "Polis");

    // Administrators give the right when creating an account too.
    let created = json_of(
        c.client("admin")
            .post(c.url("/api/admin/users"))
            .json(&json!({ "username": "ny-sekr", "display_name": "Ny", "password": PASSWORD, "can_create_meetings": true }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created["can_create_meetings"], true);

    // The demo's secretary and administrator have the right, nobody else.
    protokoll::demo::ensure_demo(&c.server.db).await.unwrap();
    for (name, allowed) in [
        ("sekreterare", true),
        ("admin", true),
        ("ledamot", false),
        ("polis", false),
    ] {
        let user = c
            .server
            .db
            .dir
            .user_by_username(&Username::parse(name).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.may_create_meetings(), allowed, "demo {name}");
    }
    c.server.stop().await;
}

// ---- 7. password reset -----------------------------------------------------------

async fn a_password_reset_revokes_api_tokens_and_closes_connections(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = Council::start_on(&db, test_config(), &PLAN).await;
    let anna = password_user(&c.server.db, "anna", None).await;
    c.server
        .db
        .dir
        .set_participant(c.meeting.id, anna.id, Role::Member)
        .await
        .unwrap();
    let base = format!("http://{}", c.server.addr);
    let http = reqwest::Client::new();
    let cookie = sign_in(&http, &base, "anna", PASSWORD, None)
        .await
        .cookie
        .unwrap();
    let issued = json_of(
        http.post(format!("{base}/api/me/tokens"))
            .header("cookie", &cookie)
            .json(&json!({ "name": "skript" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let token = issued["secret"].as_str().unwrap().to_owned();
    let mut open = Client::synced(c.server.addr, c.meeting.id, &token).await;

    let reset = c
        .client("admin")
        .post(c.url(&format!("/api/admin/users/{}/password", anna.id)))
        .json(&json!({ "password": "ett helt nytt lösenord" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(
        json_of(reset).await,
        json!({ "sessions_ended": 1, "tokens_revoked": 1, "connections_closed": 1 })
    );
    assert_eq!(open.closed_by_server().await.0, 4401);
    let with_token = bearer_client(&token)
        .get(c.url("/api/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_token.status(),
        401,
        "the token minted before the reset is dead"
    );
    assert_eq!(
        open_socket(&sync_url(c.server.addr, c.meeting.id, &token))
            .await
            .err()
            .map(|e| e.0),
        Some(401)
    );
    let with_cookie = http
        .get(c.url("/api/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 401);

    // Administrators see any user's tokens and revoke any.
    let listed = c
        .get_raw("admin", &format!("/api/admin/users/{}/tokens", anna.id))
        .await;
    assert_eq!(listed.status(), 200);
    let listed = json_of(listed).await;
    assert_eq!(listed[0]["id"], issued["token"]["id"]);
    assert!(listed[0]["revoked_at"].is_string(), "{listed}");
    let members = json_of(
        c.get_raw(
            "admin",
            &format!("/api/admin/users/{}/tokens", c.users["member"].id),
        )
        .await,
    )
    .await;
    let member_token = members[0]["id"].as_str().unwrap();
    for (who, status) in [("secretary", 403), ("admin", 204)] {
        let revoked = c
            .delete_raw(who, &format!("/api/admin/tokens/{member_token}"))
            .await;
        assert_eq!(revoked.status(), status, "{who} revokes the member's token");
    }
    let member = c.get_raw("member", "/api/me").await;
    assert_eq!(member.status(), 401);
    let refused = c
        .get_raw("secretary", &format!("/api/admin/users/{}/tokens", anna.id))
        .await;
    assert_eq!(refused.status(), 403);
    c.server.stop().await;
}

// ---- 8. tokens in URLs -------------------------------------------------------------

async fn a_token_in_the_url_is_accepted_only_on_the_websocket_endpoint(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = Council::start_on(&db, test_config(), &PLAN).await;
    let token = &c.tokens["member"];
    password_user(&c.server.db, "anna", None).await;
    let base = format!("http://{}", c.server.addr);
    let http = reqwest::Client::new();
    let cookie = sign_in(&http, &base, "anna", PASSWORD, None)
        .await
        .cookie
        .unwrap();
    for path in [
        format!("/api/me?token={token}"),
        format!("/api/meetings?token={token}"),
        format!("/api/meetings/{}?token={token}", c.meeting.id),
        format!("/api/me/tokens?x=1&token={token}"),
        format!("/api/me?%74oken={token}"),
        "/healthz?token=pk_x".to_owned(),
        "/index.html?token=pk_x".to_owned(),
    ] {
        for with_cookie in [false, true] {
            let mut request = http.get(format!("{base}{path}"));
            if with_cookie {
                request = request.header("cookie", &cookie);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{path} (cookie: {with_cookie})");
            let body = json_of(response).await;
            assert_eq!(body["error"]["code"], "token_in_url", "{path}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("Authorization: Bearer"),
                "{body}"
            );
        }
    }
    let login = http
        .post(format!("{base}/api/login?token={token}"))
        .json(&json!({ "username": "anna", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);
    // The header still works, and the WebSocket URL still takes the token.
    let me = c.get_raw("member", "/api/me").await;
    assert_eq!(me.status(), 200);
    let ws = Client::synced(c.server.addr, c.meeting.id, token).await;
    assert!(ws.synced);
    c.server.stop().await;
}

// ---- also: names that display as something else --------------------------------

async fn names_and_titles_refuse_bidirectional_controls_and_line_separators(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = Council::start_on(&db, test_config(), &PLAN).await;
    password_user(&c.server.db, "anna", None).await;
    let admin = c.client("admin");
    let secretary = c.client("secretary");
    // One known-good section to rename.
    let added = secretary
        .post(c.url("/api/meetings/{m}/agenda"))
        .json(&json!({ "id": "polis", "title": "Polis", "owner": { "kind": "secretary" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    for bad in [
        "Polis\u{202e}siloP",
        "Rad ett\u{2028}Rad två",
        "a\u{2066}b",
        "x\u{200f}",
        "y\u{61c}",
        "§\u{2029}",
        "\u{2028}",
    ] {
        let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
            ("meeting title", admin.post(c.url("/api/meetings")).json(&json!({ "title": bad }))),
            ("meeting body", admin.post(c.url("/api/meetings")).json(&json!({ "title": "Ok", "body": bad }))),
            ("meeting place", admin.post(c.url("/api/meetings")).json(&json!({ "title": "Ok", "place": bad }))),
            ("changed title", secretary.put(c.url("/api/meetings/{m}")).json(&json!({ "title": bad }))),
            ("section title", secretary.post(c.url("/api/meetings/{m}/agenda")).json(&json!({ "id": "ny", "title": bad, "owner": { "kind": "secretary" } }))),
            ("section number", secretary.post(c.url("/api/meetings/{m}/agenda")).json(&json!({ "id": "ny", "title": "Ny", "number": bad, "owner": { "kind": "secretary" } }))),
            ("renamed section", secretary.patch(c.url("/api/meetings/{m}/agenda/polis")).json(&json!({ "title": bad }))),
            ("display name", admin.post(c.url("/api/admin/users")).json(&json!({ "username": "ny", "display_name": bad, "password": PASSWORD }))),
            ("agency name", admin.post(c.url("/api/admin/agencies")).json(&json!({ "name": bad }))),
            ("token name", secretary.post(c.url("/api/me/tokens")).json(&json!({ "name": bad }))),
            ("admin token name", admin.post(c.url(&format!("/api/admin/users/{}/tokens", c.users["member"].id))).json(&json!({ "name": bad }))),
            ("invitee name", secretary.post(c.url("/api/meetings/{m}/invitations")).json(&json!({ "username": "ny", "display_name": bad, "role": "member" }))),
        ];
        for (what, request) in cases {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 422, "{what} {bad:?}");
            let body = json_of(response).await;
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("bidirectional"),
                "{what}: {body}"
            );
        }
    }
    // Nothing was created or changed.
    let meetings = json_of(admin.get(c.url("/api/meetings")).send().await.unwrap()).await;
    assert_eq!(meetings.as_array().unwrap().len(), 1);
    assert_eq!(meetings[0]["title"], "Lokala Brå");
    let agenda = json_of(
        secretary
            .get(c.url("/api/meetings/{m}/agenda"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        agenda,
        json!([{ "id": "polis", "number": "1", "title": "Polis", "owner": { "kind": "secretary" } }])
    );
    let agencies = json_of(
        admin
            .get(c.url("/api/admin/agencies"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(agencies.as_array().unwrap().len(), 1);
    let pending = json_of(
        secretary
            .get(c.url("/api/meetings/{m}/invitations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(pending, json!([]));
    // Right-to-left text itself is welcome.
    let arabic = admin
        .post(c.url("/api/admin/agencies"))
        .json(&json!({ "name": "شرطة" }))
        .send()
        .await
        .unwrap();
    assert_eq!(arabic.status(), 201);
    c.server.stop().await;
}

// ---- also: invitations do not reveal taken usernames ------------------------------

async fn an_invitation_does_not_reveal_whether_a_username_is_taken(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = Council::start_on(&db, test_config(), &PLAN).await;
    let mut timings: HashMap<bool, Vec<Duration>> = HashMap::new();
    let mut secrets = Vec::new();
    for i in 0..15 {
        for taken in [true, false] {
            let username = if taken {
                "member".to_owned()
            } else {
                format!("ledig{i}")
            };
            let started = Instant::now();
            let response = c
                .invite_with(
                    "secretary",
                    json!({ "username": username, "display_name": "Någon", "role": "member" }),
                )
                .await;
            timings.entry(taken).or_default().push(started.elapsed());
            assert_eq!(response.status(), 201, "inviting {username}");
            let body = json_of(response).await;
            let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            assert_eq!(keys, ["expires_at", "id", "secret", "url"]);
            if i == 0 {
                secrets.push((taken, body["secret"].as_str().unwrap().to_owned()));
            }
        }
    }
    let median = |taken: bool| {
        let mut t = timings[&taken].clone();
        t.sort();
        t[t.len() / 2]
    };
    let (taken, free) = (median(true), median(false));
    eprintln!("invitation answer, median of 15: taken {taken:?}, free {free:?}");
    let slack = Duration::from_millis(25);
    assert!(
        taken < free * 3 + slack && free < taken * 3 + slack,
        "taken {taken:?}, free {free:?}"
    );

    // Only the invitee learns it, when accepting; nothing is created.
    for (taken, secret) in secrets {
        let response = c.accept_link(&secret).await;
        if taken {
            assert_eq!(response.status(), 409);
            let body = json_of(response).await;
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("contact the meeting's secretary"),
                "{body}"
            );
        } else {
            assert_eq!(response.status(), 201);
        }
    }
    let member = c.get_raw("member", "/api/me").await;
    assert_eq!(
        json_of(member).await["display_name"],
        "member (test)",
        "the account is untouched"
    );
    c.server.stop().await;
}

// ---- the command line --------------------------------------------------------------

async fn the_cli_normalises_names_grants_meeting_creation_and_revokes_tokens_on_reset(
    backend: Backend,
) {
    let db = TestDb::new(backend).await;
    let (ok, _, err) = cli(
        &db,
        &[
            "user",
            "create",
            " ＡＮＮＡ\u{3000}",
            "--name",
            "Anna",
            "--can-create-meetings",
            "--password-stdin",
        ],
        Some("annas långa lösenord\n"),
    );
    assert!(ok, "{err}");
    let (_, list, _) = cli(&db, &["user", "list"], None);
    assert!(list.contains("\tanna\t-\tcreator\tAnna"), "{list}");
    let (ok, _, err) = cli(&db, &["user", "set-creator", "Anna", "false"], None);
    assert!(ok, "{err}");
    let (_, list, _) = cli(&db, &["user", "list"], None);
    assert!(list.contains("\tanna\t-\t-\tAnna"), "{list}");

    let (_, token, _) = cli(&db, &["token", "issue", "anna", "--name", "skript"], None);
    let (ok, _, err) = cli(
        &db,
        &["user", "reset-password", "anna", "--password-stdin"],
        Some("ett nytt långt lösenord\n"),
    );
    assert!(ok, "{err}");
    assert!(err.contains("1 API tokens revoked"), "{err}");
    let database = db.database().await;
    let live = database
        .dir
        .token(&protokoll::auth::secret::hash(token.trim()))
        .await
        .unwrap();
    assert!(live.is_none(), "the token is revoked");
    database.close().await;

    let (ok, _, err) = cli(
        &db,
        &[
            "meeting",
            "create",
            "Möte",
            "--place",
            "Plats\u{202e}",
            "--section",
            "1|Öppnande|secretary",
        ],
        None,
    );
    assert!(!ok, "a place with a bidi override is refused");
    assert!(err.contains("bidirectional"), "{err}");
    let (_, meetings, _) = cli(&db, &["meeting", "list"], None);
    assert!(
        meetings.trim().is_empty(),
        "nothing was created: {meetings}"
    );
}

async fn the_new_routes_are_in_the_openapi_document(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let doc = get_json(&reqwest::Client::new(), server.http("/api/openapi.json")).await;
    for (path, method) in [
        ("/api/meetings/{id}/invitations", "get"),
        ("/api/meetings/{id}/invitations/{invitation}", "delete"),
        ("/api/admin/users/{id}", "patch"),
        ("/api/admin/users/{id}/tokens", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} documented"
        );
    }
    server.stop().await;
}

crate::on_both_backends!(
    the_new_routes_are_in_the_openapi_document,
    concurrent_sign_ins_are_throttled_before_hashing_and_memory_stays_bounded,
    behind_a_trusted_proxy_each_client_is_throttled_on_its_own,
    padded_or_lookalike_usernames_are_one_name_everywhere,
    one_user_cannot_take_every_socket,
    sockets_stop_short_of_the_descriptor_limit,
    invitations_end_when_their_sender_may_no_longer_invite,
    only_administrators_put_people_in_agencies_or_let_them_create_meetings,
    a_password_reset_revokes_api_tokens_and_closes_connections,
    a_token_in_the_url_is_accepted_only_on_the_websocket_endpoint,
    names_and_titles_refuse_bidirectional_controls_and_line_separators,
    an_invitation_does_not_reveal_whether_a_username_is_taken,
    the_cli_normalises_names_grants_meeting_creation_and_revokes_tokens_on_reset,
);
