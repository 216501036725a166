//! What the browser app needs from the server: its files (embedded, with
//! security headers, caching and app routes), meetings made from earlier
//! ones, the people picker, removing agenda items, seeded empty sections.

use serde_json::{Value, json};
use yrs::{Array, Map, ReadTxn, Transact};

use crate::{helpers::*, on_both_backends};

fn plain() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_is_served_with_security_headers_caching_and_its_routes() {
    init_logs();
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db).await;
    let http = plain();

    for path in [
        "/",
        "/login",
        "/meetings/3f2b9c4e-8a1d-4c55-9e0b-6a7d2f1c0e42",
        "/invite/pi_abc",
    ] {
        let r = http.get(server.http(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{path}");
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        let html = r.text().await.unwrap();
        assert!(
            html.contains(r#"<script type="module" src="/assets/main-"#),
            "{html}"
        );
    }

    // The hashed script: long cache, revalidation by ETag, compression.
    let html = get_text(&http, server.http("/")).await;
    let script = html
        .split(r#"src=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let r = http.get(server.http(&script)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let etag = r.headers()["etag"].clone();
    let again = http
        .get(server.http(&script))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let gz = http
        .get(server.http(&script))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["vary"], "Accept-Encoding");

    // Unknown things: a page the app reports as missing, a file that is
    // not there, an API path that does not exist (JSON), no way out.
    let r = http.get(server.http("/no-such-page")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("<div id=\"app\">"));
    assert_eq!(
        http.get(server.http("/assets/missing-123.js"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let r = http
        .get(server.http("/api/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    for sneaky in [
        "/assets/../../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/assets/%2e%2e/%2e%2e/Cargo.toml",
    ] {
        let r = http.get(server.http(sneaky)).send().await.unwrap();
        assert!(r.status() == 404, "{sneaky}: {}", r.status());
    }
    let r = http.post(server.http("/")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    server.stop().await;
}

/// An agency, a member of it, and a meeting whose secretary is `scribe`.
async fn meeting_with_agenda(server: &TestServer) -> (String, Value, String) {
    let admin = server.http_client();
    let agency: Value = admin
        .post(server.http("/api/admin/agencies"))
        .json(&json!({ "name": "Polis" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (polis, polis_token) = agency_user_with_token(
        &server.db,
        "anna",
        false,
        Some(agency["id"].as_str().unwrap().parse().unwrap()),
    )
    .await;
    let secretary = bearer_client(&server.writer());
    let meeting = server.meeting("Lokala Brå 2018-03-09").await;
    let id = meeting.id.to_string();
    admin
        .put(server.http(&format!("/api/meetings/{id}/participants/{}", polis.id)))
        .json(&json!({ "role": "member" }))
        .send()
        .await
        .unwrap();
    let r = secretary
        .post(server.http(&format!("/api/meetings/{id}/agenda")))
        .json(
            &json!({ "id": "rapport", "number": "2.1", "title": "Polisens rapport",
            "owner": { "kind": "agency", "agency_id": agency["id"] } }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    (id, agency, polis_token)
}

async fn a_meeting_from_an_earlier_one_copies_agenda_owners_and_participants(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let (earlier, agency, polis_token) = meeting_with_agenda(&server).await;
    let secretary = bearer_client(&server.writer());
    let scribe = server
        .db
        .dir
        .user_by_username(&protokoll::people::Username::parse("scribe").unwrap())
        .await
        .unwrap()
        .unwrap();
    server
        .db
        .dir
        .set_can_create_meetings(scribe.id, true)
        .await
        .unwrap();

    // Someone who may create meetings but cannot read the earlier one gets
    // 404 and nothing is made.
    let (stranger_user, stranger) = user_with_token(&server.db, "stranger", false).await;
    server
        .db
        .dir
        .set_can_create_meetings(stranger_user.id, true)
        .await
        .unwrap();
    let r = bearer_client(&stranger)
        .post(server.http("/api/meetings"))
        .json(&json!({ "title": "Kopia", "from": earlier }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(server.db.dir.list_meetings(None).await.unwrap().len(), 1);

    let r = secretary
        .post(server.http("/api/meetings"))
        .json(&json!({ "title": "Lokala Brå 2018-05-18", "date": "2018-05-18", "from": earlier }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let view: Value = get_json(&secretary, server.http(&format!("/api/meetings/{id}"))).await;
    assert_eq!(view["your_role"], "secretary");
    let agenda = view["agenda"].as_array().unwrap();
    assert_eq!(agenda.len(), 1 + TEST_SECTIONS.len());
    let rapport = agenda.iter().find(|s| s["id"] == "rapport").unwrap();
    assert_eq!(
        rapport["owner"],
        json!({ "kind": "agency", "agency_id": agency["id"] })
    );
    assert_eq!(rapport["number"], "2.1");
    let roles: Vec<(String, String)> = view["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["user"]["username"].as_str().unwrap().into(),
                p["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        roles.contains(&("anna".into(), "member".into())),
        "{roles:?}"
    );
    assert!(
        roles.contains(&("scribe".into(), "secretary".into())),
        "{roles:?}"
    );

    // The document has the agenda and one empty paragraph per section, so
    // the new owner writes straight away.
    let meeting = id.parse().unwrap();
    let mut polis = Client::synced(server.addr, meeting, &polis_token).await;
    polis
        .until("the agenda", |c| {
            let txn = c.doc.transact();
            txn.get_array("agenda")
                .is_some_and(|a| a.len(&txn) == 1 + TEST_SECTIONS.len() as u32)
        })
        .await;
    assert_eq!(polis.section("section:rapport"), "<paragraph></paragraph>");
    polis.write("section:rapport", "ny rapport").await;
    // The list shows your role in each meeting.
    let list: Value = get_json(&bearer_client(&polis_token), server.http("/api/meetings")).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|m| m["your_role"] == "member"),
        "{list}"
    );
    server.stop().await;
}

async fn people_and_agencies_are_for_secretaries_and_administrators(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let (_, _, polis_token) = meeting_with_agenda(&server).await;
    for path in ["/api/people", "/api/agencies"] {
        let r = bearer_client(&polis_token)
            .get(server.http(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            403,
            "a member of no meeting's secretariat: {path}"
        );
        let r = plain().get(server.http(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        for token in [server.writer(), server.admin_token.clone()] {
            let r = bearer_client(&token)
                .get(server.http(path))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
        }
    }
    let people: Value = bearer_client(&server.writer())
        .get(server.http("/api/people"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let anna = people
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["display_name"] == "anna (test)")
        .unwrap();
    assert_eq!(anna["agency"]["name"], "Polis");
    assert!(anna.get("username").is_none(), "no usernames: {anna}");
    server.stop().await;
}

async fn removing_an_agenda_item_takes_it_out_of_the_document_and_the_guard(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let (id, _, polis_token) = meeting_with_agenda(&server).await;
    let meeting = id.parse().unwrap();
    let mut polis = Client::synced(server.addr, meeting, &polis_token).await;
    polis.write("section:rapport", "före").await;
    let mut watcher = Client::synced(server.addr, meeting, &server.writer()).await;
    watcher
        .until("the text is accepted", |c| {
            c.section("section:rapport").contains("före")
        })
        .await;

    let path = format!("/api/meetings/{id}/agenda/rapport");
    let r = bearer_client(&polis_token)
        .delete(server.http(&path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "only the secretary removes items");
    let secretary = bearer_client(&server.writer());
    let r = secretary.delete(server.http(&path)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = secretary.delete(server.http(&path)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = secretary
        .delete(server.http(&format!("/api/meetings/{id}/agenda/NOT_AN_ID")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    polis
        .until("the item left the agenda", |c| {
            let txn = c.doc.transact();
            let agenda = txn.get_array("agenda").unwrap();
            agenda.iter(&txn).all(|v| match v {
                yrs::Out::YMap(m) => {
                    m.get(&txn, "id").map(|v| v.to_string(&txn)) != Some("rapport".into())
                }
                _ => true,
            })
        })
        .await;
    // Nobody writes a removed item any more.
    polis.write("section:rapport", "efter").await;
    let (code, _) = polis.closed_by_server().await;
    assert_eq!(code, 4403);
    let fresh = Client::synced(server.addr, meeting, &server.writer()).await;
    assert!(fresh.section("section:rapport").contains("före"));
    assert!(!fresh.section("section:rapport").contains("efter"));
    server.stop().await;
}

async fn an_invitation_names_its_meeting(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let (id, _, _) = meeting_with_agenda(&server).await;
    let issued: Value = bearer_client(&server.writer())
        .post(server.http(&format!("/api/meetings/{id}/invitations")))
        .json(&json!({ "username": "nina", "display_name": "Nina Nykomling", "role": "member" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = issued["secret"].as_str().unwrap();
    let shown: Value = get_json(&plain(), server.http(&format!("/api/invitations/{secret}"))).await;
    assert_eq!(shown["meeting_id"], id.as_str());
    server.stop().await;
}

on_both_backends!(
    a_meeting_from_an_earlier_one_copies_agenda_owners_and_participants,
    people_and_agencies_are_for_secretaries_and_administrators,
    removing_an_agenda_item_takes_it_out_of_the_document_and_the_guard,
    an_invitation_names_its_meeting,
);

/// A browser whose network vanished without a goodbye leaves a connection
/// the server must notice by its pings and drop: until then it holds the
/// tab's Yjs client id, and the tab's offline edits cannot come back in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_stops_answering_pings_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    init_logs();
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start_with(
        &db,
        protokoll::config::ServerConfig {
            ping_interval_secs: 1,
            ..test_config()
        },
    )
    .await;
    let meeting = server.meeting("Tyst").await;
    // A WebSocket by hand: the handshake, then never a byte back (no pong).
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /sync/{}?token={} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        meeting.id,
        server.writer(),
        server.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(DEADLINE, tcp.read_to_end(&mut received))
        .await
        .expect("the server drops the silent connection")
        .unwrap();
    assert!(received.starts_with(b"HTTP/1.1 101"), "upgraded");
    // The server's close frame (unmasked): 0x88, length, code 1001.
    assert!(
        received
            .windows(4)
            .any(|w| w[0] == 0x88 && w[2] == 0x03 && w[3] == 0xE9),
        "closed with 1001 (no answer to ping)"
    );
    server.stop().await;
}

/// The verification page is the server's own (no JavaScript needed), under
/// the same Content-Security-Policy as the app, which allows no inline
/// style: its look comes from a stylesheet file, and a wrong hash is
/// explained in Swedish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verification_page_is_styled_under_the_apps_content_security_policy() {
    init_logs();
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db).await;
    let http = plain();

    for path in ["/verify", "/verify?hash=nonsense"] {
        let r = http.get(server.http(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("style-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        let html = r.text().await.unwrap();
        assert!(!html.contains("<style"), "{path}: inline style is blocked");
        assert!(!html.contains(" style="), "{path}: inline style is blocked");
        assert!(
            html.contains(r#"<link rel="stylesheet" href="/verify.css">"#),
            "{path}: {html}"
        );
        assert!(html.contains(r#"<html lang="sv">"#));
    }
    let wrong = get_text(&http, server.http("/verify?hash=nonsense")).await;
    assert!(wrong.contains("64 tecken"), "{wrong}");

    let css = http.get(server.http("/verify.css")).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let css = css.text().await.unwrap();
    assert!(css.contains(".app-bar") && css.contains(".bad"), "{css}");
}

/// `NAME: number` pairs between `start` and the first line that is `end`,
/// read from a source file (comments and blank lines skipped).
fn constants(
    source: &str,
    start: &str,
    end: &str,
    pair: fn(&str) -> Option<(String, u16)>,
) -> std::collections::BTreeMap<String, u16> {
    let block = source
        .split_once(start)
        .unwrap_or_else(|| panic!("{start:?} is in the file"))
        .1;
    block
        .lines()
        .map(str::trim)
        .take_while(|l| *l != end)
        .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with("/*"))
        .map(|l| pair(l).unwrap_or_else(|| panic!("a close code: {l:?}")))
        .collect()
}

/// The web app takes its close codes from one module, `web/src/close.ts`;
/// it holds exactly the server's (`sync::peer::close_code`), name for name.
#[test]
fn the_web_apps_close_codes_are_the_servers() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |path: &str| {
        std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let server = constants(
        &read("server/src/sync/peer.rs"),
        "pub mod close_code {",
        "}",
        |l| {
            let (name, value) = l.strip_prefix("pub const ")?.split_once(": u16 = ")?;
            Some((name.to_owned(), value.strip_suffix(';')?.parse().ok()?))
        },
    );
    let web = constants(
        &read("web/src/close.ts"),
        "export const CLOSE = {",
        "} as const",
        |l| {
            let (name, value) = l.split_once(": ")?;
            Some((name.to_owned(), value.strip_suffix(',')?.parse().ok()?))
        },
    );
    // The server's file was read right: its parse agrees with the constants.
    use protokoll::sync::peer::close_code;
    for (name, code) in [
        ("SERVICE_RESTART", close_code::SERVICE_RESTART),
        ("UNAUTHORIZED", close_code::UNAUTHORIZED),
        ("FORBIDDEN", close_code::FORBIDDEN),
        ("TOO_LARGE", close_code::TOO_LARGE),
        ("TOO_MANY", close_code::TOO_MANY),
        ("PROTOCOL_LOCKED", close_code::PROTOCOL_LOCKED),
    ] {
        assert_eq!(server.get(name), Some(&code), "{name} in peer.rs");
    }
    assert_eq!(
        web, server,
        "web/src/close.ts has the close codes of server/src/sync/peer.rs"
    );
}
