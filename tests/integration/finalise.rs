//! Finalising: the lock against clients typing, the database's refusal of
//! late appends (also from a second server process), immutability, the
//! role matrix for lock/reopen/sign-off/reject, byte-identical exports,
//! PDF/A claims, and verification of untouched and changed files.

use std::{collections::HashMap, time::Duration};

use reqwest::StatusCode;
use serde_json::{Value, json};
use yrs::{Map, Out, ReadTxn, Transact, WriteTxn, XmlElementPrelim, XmlFragment, XmlTextPrelim};

use crate::{fixture::*, helpers::*};
use protokoll::{people::Role, sync::protocol};

/// A meeting with a secretary ("scribe", who writes the `TEST_SECTIONS`),
/// a chair, a justerare, a member, a police officer who writes the
/// `polis-rapport` section, and an outsider; each with an API token.
const PLAN: Plan = Plan {
    title: "Lokala Brå 2018-03-09",
    writable: true,
    agencies: &["Polis"],
    sections: &[("polis-rapport", "2.1", "Polis", Some("Polis"))],
    people: &[
        Person::new("chair", Some(Role::Chair)),
        Person::new("justerare", Some(Role::Justerare)),
        Person::new("member", Some(Role::Member)),
        Person::new("polis", Some(Role::Member)).of("Polis"),
        Person::new("outsider", None).of("Polis"),
    ],
};

pub(crate) async fn council_on(db: &TestDb) -> Council {
    Council::start_on(db, test_config(), &PLAN).await
}

/// A paragraph update for `root` in `doc`.
pub(crate) fn paragraph(doc: &yrs::Doc, root: &str, text: &str) -> Vec<u8> {
    let mut txn = doc.transact_mut();
    let fragment = txn.get_or_insert_xml_fragment(root);
    let p = fragment.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
    p.push_back(&mut txn, XmlTextPrelim::new(text));
    txn.encode_update_v1()
}

/// The paragraphs' plain texts of a section in a canonical protocol.
pub(crate) fn section_texts(canonical: &Value, section: &str) -> Vec<String> {
    canonical["agenda"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == section)
        .map(|i| {
            i["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    b["content"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|t| t["text"].as_str())
                        .collect::<String>()
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn protocol_state(client: &Client) -> Option<String> {
    let txn = client.doc.transact();
    match txn.get_map("protocol")?.get(&txn, "state")? {
        Out::Any(yrs::Any::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

/// Paragraphs each typist sends before the lock is started.
pub(crate) const BEFORE_LOCK: usize = 30;

/// Types paragraphs `{root}-{n}` as fast as the socket takes them, reading
/// whatever arrives in between, until the server closes the connection;
/// says so on `started` after `BEFORE_LOCK` paragraphs. Returns what was
/// sent, in order, and the client.
pub(crate) async fn type_until_closed(
    mut client: Client,
    root: &'static str,
    started: tokio::sync::mpsc::Sender<()>,
) -> (Vec<String>, Client) {
    let mut sent = Vec::new();
    let section = format!("section:{root}");
    for n in 0..1_000_000 {
        if client.closed.is_some() {
            break;
        }
        let marker = format!("{root}-{n}");
        let update = paragraph(&client.doc, &section, &marker);
        if client
            .try_send(protocol::encode_update(&update))
            .await
            .is_err()
        {
            break;
        }
        sent.push(marker);
        if sent.len() == BEFORE_LOCK {
            let _ = started.send(()).await;
        }
        // Read what has arrived, without waiting for more.
        while let Ok(true) = tokio::time::timeout(Duration::ZERO, client.step()).await {}
    }
    tokio::time::timeout(DEADLINE, async { while client.step().await {} })
        .await
        .expect("the server closes the connection in time");
    (sent, client)
}

async fn finalise_while_clients_type_keeps_or_refuses_every_update(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = council_on(&db).await;
    let mut reader = c.ws("member").await;
    // The reader keeps reading while the others type, and waits for the
    // lock to show in its document.
    let reader = tokio::spawn(async move {
        reader
            .until("the lock", |r| {
                protocol_state(r).as_deref() == Some("locked")
            })
            .await;
        reader
    });
    let (started, mut all_started) = tokio::sync::mpsc::channel(3);
    let mut typists = Vec::new();
    for root in ["w0", "w1", "w2"] {
        let client = c.ws("secretary").await;
        typists.push(tokio::spawn(type_until_closed(
            client,
            root,
            started.clone(),
        )));
    }
    // Lock while all three are typing.
    for _ in 0..3 {
        tokio::time::timeout(DEADLINE, all_started.recv())
            .await
            .expect("the clients type")
            .expect("a typist started");
    }
    let hash = c.lock().await;

    let canonical: Value =
        serde_json::from_slice(&c.bytes("member", "/api/meetings/{m}/protocol.json").await)
            .unwrap();
    let stored = stored_doc(c.server.store(), c.meeting.id).await;
    for (typist, root) in typists.into_iter().zip(["w0", "w1", "w2"]) {
        let (sent, client) = typist.await.unwrap();
        let rendered = section_texts(&canonical, root);
        assert!(
            !rendered.is_empty(),
            "{root}: updates before the lock are in the protocol"
        );
        assert_eq!(
            rendered[..],
            sent[..rendered.len()],
            "{root}: what the protocol holds is exactly what was sent first, none missing"
        );
        assert!(
            rendered.len() < sent.len(),
            "{root} kept typing after the lock"
        );
        assert_eq!(
            client.closed,
            Some((4423, "the protocol is locked".to_owned())),
            "{root}: the updates after the lock were refused"
        );
        assert_eq!(
            client.permission_denied.as_deref(),
            Some("permission denied: the protocol is locked")
        );
        let stored_text = fragment_text(&stored, &format!("section:{root}"));
        for late in &sent[rendered.len()..] {
            assert!(
                !stored_text.contains(&format!(">{late}<")),
                "{late} was refused but stored"
            );
        }
    }
    // The reader saw the lock live, with the hash, and is still connected.
    let reader = reader.await.unwrap();
    assert!(reader.closed.is_none());
    let txn = reader.doc.transact();
    let announced = txn.get_map("protocol").unwrap().get(&txn, "hash");
    assert_eq!(announced, Some(Out::Any(yrs::Any::String(hash.into()))));
}

async fn a_second_server_that_was_not_told_of_the_lock_cannot_append(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = council_on(&db).await;
    let other = ProcessServer::start(&db).await;
    let mut client = Client::synced(other.addr, c.meeting.id, &c.tokens["secretary"]).await;
    let mut witness = Client::synced(other.addr, c.meeting.id, &c.tokens["member"]).await;
    let before = paragraph(&client.doc, "section:w0", "före låset");
    client.send_raw(protocol::encode_update(&before)).await;
    witness
        .until("the first paragraph", |w| {
            w.section("section:w0").contains("före låset")
        })
        .await;

    // Locked through the first server; the second has its room open and
    // has heard nothing.
    c.lock().await;
    let after = paragraph(&client.doc, "section:w0", "efter låset");
    client.send_raw(protocol::encode_update(&after)).await;
    let (code, reason) = client.closed_by_server().await;
    assert_eq!((code, reason.as_str()), (4423, "the protocol is locked"));

    let stored = stored_doc(c.server.store(), c.meeting.id).await;
    let text = fragment_text(&stored, "section:w0");
    assert!(text.contains("före låset"));
    assert!(
        !text.contains("efter låset"),
        "the log took an append after the lock"
    );
    let canonical: Value =
        serde_json::from_slice(&c.bytes("member", "/api/meetings/{m}/protocol.json").await)
            .unwrap();
    assert_eq!(section_texts(&canonical, "w0"), vec!["före låset"]);
    // The other connection on that server stays, and still reads.
    assert!(witness.closed.is_none());
    other.kill().await;
}

/// A lock made with the command line, which no room sees, reaches the
/// connections the server holds open through the document (the `protocol`
/// map), as a lock made through the API does; and so does reopening. Only
/// a client reading the document is here: nothing polls the API.
async fn a_lock_made_with_the_cli_reaches_open_connections_through_the_document(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = council_on(&db).await;
    let mut reader = c.ws("member").await;
    assert_eq!(protocol_state(&reader), None);
    let meeting = c.meeting.id.to_string();
    for (command, state) in [("lock", "locked"), ("reopen", "draft")] {
        let started = std::time::Instant::now();
        // The in-process server keeps running on the other worker.
        tokio::task::block_in_place(|| {
            crate::cli::protokoll(&db, &["meeting", command, &meeting, "--as", "scribe"], None)
        });
        reader
            .until(&format!("the document to say {state}"), |r| {
                protocol_state(r).as_deref() == Some(state)
            })
            .await;
        println!(
            "figure: {{\"cli_{command}_to_document_ms\": {}}}",
            started.elapsed().as_millis()
        );
    }
    assert!(reader.closed.is_none(), "the reader stays connected");
    // Writable again: the room took the draft state from the database.
    let mut scribe = c.ws("secretary").await;
    let update = paragraph(&scribe.doc, "section:w0", "efter att det öppnades igen");
    scribe.send_raw(protocol::encode_update(&update)).await;
    reader
        .until("the text written after reopening", |r| {
            r.section("section:w0")
                .contains("efter att det öppnades igen")
        })
        .await;
}

async fn sql_cannot_change_a_locked_protocol_or_append_to_its_log(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = council_on(&db).await;
    let hash = c.lock().await;
    let meeting = c.meeting.id.as_uuid();
    let statements: Vec<(&str, String)> = vec![
        (
            "update protocol",
            "UPDATE protocols SET canonical = '{}'".into(),
        ),
        ("delete protocol", "DELETE FROM protocols".into()),
        ("update audit", "UPDATE audit SET reason = 'x'".into()),
        ("delete audit", "DELETE FROM audit".into()),
        ("rename a section", "UPDATE sections SET title = 'x'".into()),
    ];
    let insert = "INSERT INTO doc_updates (meeting_id, data) VALUES ($1, $2)";
    crate::with_pool!(backend, &db.url, |pool| {
        for (what, sql) in &statements {
            assert!(
                sqlx::query(sql).execute(&pool).await.is_err(),
                "{what} was allowed"
            );
        }
        if backend == Backend::Postgres {
            assert!(
                sqlx::query("TRUNCATE protocols CASCADE")
                    .execute(&pool)
                    .await
                    .is_err()
            );
        }
        let appended = sqlx::query(insert)
            .bind(meeting)
            .bind(vec![0u8, 0])
            .execute(&pool)
            .await;
        assert!(
            appended.is_err(),
            "an append to a locked meeting's log was allowed"
        );
    });
    let (_, view) = c.get("member", "/api/meetings/{m}/protocol").await;
    assert_eq!(
        view["locked"]["hash"],
        hash.as_str(),
        "the protocol is unchanged"
    );
}

/// One group commit carrying updates of a draft and of a locked meeting
/// stores the draft's and refuses only the locked one's, in either order
/// (on SQLite the insert goes first and the lock trigger's refusal makes it
/// read the meetings' states and leave the locked one out).
async fn a_group_commit_refuses_only_the_locked_meeting(backend: Backend) {
    use bytes::Bytes;
    use protokoll::store::{self, AppendBatch, Appended};
    let db = TestDb::new(backend).await;
    let database = store::connect(&db.url).await.unwrap();
    let draft = create_meeting(&database, "Utkast").await.id;
    let locked = create_meeting(&database, "Låst").await.id;
    let set_locked = "UPDATE meetings SET state = 'locked' WHERE id = $1";
    crate::with_pool!(backend, &db.url, |pool| {
        sqlx::query(set_locked)
            .bind(locked.as_uuid())
            .execute(&pool)
            .await
            .unwrap();
    });
    let batch = |meeting, n: u8| AppendBatch {
        meeting,
        updates: (0..n).map(|i| Bytes::from(vec![0, i])).collect(),
    };
    let first = database
        .docs
        .append_to_drafts(&[batch(locked, 1), batch(draft, 2)])
        .await
        .unwrap();
    assert_eq!(first[0], Appended::Locked);
    assert!(matches!(first[1], Appended::Stored(_)), "{first:?}");
    let second = database
        .docs
        .append_to_drafts(&[batch(draft, 1), batch(locked, 3)])
        .await
        .unwrap();
    assert!(matches!(second[0], Appended::Stored(_)), "{second:?}");
    assert_eq!(second[1], Appended::Locked);
    let stored = database.docs.load_document(draft).await.unwrap();
    assert_eq!(stored.updates.len(), 3, "the draft keeps all three updates");
    let refused = database.docs.load_document(locked).await.unwrap();
    assert!(
        refused.updates.is_empty(),
        "the locked meeting's log took rows"
    );
    database.close().await;
}

async fn only_the_right_roles_lock_reopen_sign_off_and_reject(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = council_on(&db).await;
    let lock = "/api/meetings/{m}/protocol/lock";
    let reopen = "/api/meetings/{m}/protocol/reopen";
    for who in ["chair", "justerare", "member", "polis"] {
        assert_eq!(
            c.post(who, lock, json!({})).await.0,
            StatusCode::FORBIDDEN,
            "{who} locked"
        );
    }
    assert_eq!(
        c.post("outsider", lock, json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    // An administrator may lock and reopen (and is recorded by name).
    assert_eq!(c.post("admin", lock, json!({})).await.0, StatusCode::OK);
    for who in ["chair", "justerare", "member", "polis"] {
        assert_eq!(
            c.post(who, reopen, json!({})).await.0,
            StatusCode::FORBIDDEN,
            "{who} reopened"
        );
    }
    assert_eq!(c.post("admin", reopen, json!({})).await.0, StatusCode::OK);
    let hash = c.lock().await;

    // Nobody writes over the WebSocket once locked: not the secretary, not
    // an agency, not the chair.
    for (who, root) in [
        ("secretary", "section:w0"),
        ("polis", "section:polis-rapport"),
        ("chair", "section:w1"),
    ] {
        let mut client = c.ws(who).await;
        let update = paragraph(&client.doc, root, "sent efter låset");
        client.send_raw(protocol::encode_update(&update)).await;
        assert_eq!(
            client.closed_by_server().await,
            (4423, "the protocol is locked".to_owned()),
            "{who}"
        );
    }
    // A reader that reconnects (sync step 2 with nothing new) is not refused.
    let mut reader = c.ws("member").await;
    reader.send_raw(protocol::encode_sync_step_2(&[0, 0])).await;

    let signoffs = "/api/meetings/{m}/signoffs";
    let reject = "/api/meetings/{m}/protocol/reject";
    for who in ["secretary", "member", "polis", "admin"] {
        assert_eq!(
            c.post(who, signoffs, json!({"hash": hash})).await.0,
            StatusCode::FORBIDDEN,
            "{who} signed"
        );
        assert_eq!(
            c.post(who, reject, json!({"hash": hash, "reason": "fel"}))
                .await
                .0,
            StatusCode::FORBIDDEN,
            "{who} rejected"
        );
    }
    assert_eq!(
        c.post("outsider", signoffs, json!({"hash": hash})).await.0,
        StatusCode::NOT_FOUND
    );
    // A sign-off against another hash is refused.
    let stale = "0".repeat(64);
    assert_eq!(
        c.post("chair", signoffs, json!({"hash": stale})).await.0,
        StatusCode::CONFLICT
    );
    // A rejection needs a reason.
    assert_eq!(
        c.post("justerare", reject, json!({"hash": hash, "reason": "  "}))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (status, view) = c.post("chair", signoffs, json!({"hash": hash})).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["state"], "locked", "one of two sign-offs");
    assert_eq!(
        c.post("chair", signoffs, json!({"hash": hash})).await.0,
        StatusCode::CONFLICT
    );
    // Someone signed: the secretary can no longer reopen.
    assert_eq!(
        c.post("secretary", reopen, json!({})).await.0,
        StatusCode::CONFLICT
    );
    // The justerare rejects, with a reason: back to draft.
    let (status, view) = c
        .post(
            "justerare",
            reject,
            json!({"hash": hash, "reason": "§ 2.1 saknar polisens rapport"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["state"], "draft");
    reader
        .until("the reopening", |r| {
            protocol_state(r).as_deref() == Some("draft")
        })
        .await;
    assert!(reader.closed.is_none(), "a reader is never refused");
    // Writing works again; a new lock is a new version with a new hash.
    let mut polis = c.ws("polis").await;
    let update = paragraph(&polis.doc, "section:polis-rapport", "Inbrotten ökar.");
    polis.send_raw(protocol::encode_update(&update)).await;
    reader
        .until("the new paragraph", |r| {
            r.section("section:polis-rapport").contains("Inbrotten")
        })
        .await;
    let second = c.lock().await;
    assert_ne!(second, hash);
    assert_eq!(
        c.post("chair", signoffs, json!({"hash": hash})).await.0,
        StatusCode::CONFLICT,
        "old hash"
    );
    assert_eq!(
        c.post("chair", signoffs, json!({"hash": second})).await.0,
        StatusCode::OK
    );
    let (status, view) = c.post("justerare", signoffs, json!({"hash": second})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["state"], "verified");
    assert_eq!(view["locked"]["signature"]["algorithm"], "Ed25519");
    // Verified is final.
    assert_eq!(
        c.post(
            "justerare",
            reject,
            json!({"hash": second, "reason": "sent"})
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        c.post("admin", reopen, json!({})).await.0,
        StatusCode::CONFLICT
    );

    let (_, audit) = c.get("member", "/api/meetings/{m}/audit").await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "lock", "reopen", "lock", "signoff", "reject", "lock", "signoff", "signoff", "verify"
        ]
    );
    let rejection = &audit[4];
    assert_eq!(rejection["reason"], "§ 2.1 saknar polisens rapport");
    assert_eq!(rejection["hash"], hash.as_str());
    assert_eq!(audit[0]["actor_name"], "admin (test)");
}

async fn the_agenda_and_participants_are_frozen_while_locked(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = council_on(&db).await;
    c.lock().await;
    let client = c.client("secretary");
    let add = client
        .post(c.url("/api/meetings/{m}/agenda"))
        .json(&json!({"title": "Ny punkt", "owner": {"kind": "secretary"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(add.status(), StatusCode::CONFLICT);
    let rename = client
        .patch(c.url("/api/meetings/{m}/agenda/w0"))
        .json(&json!({"number": "9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rename.status(), StatusCode::CONFLICT);
    let details = client
        .put(c.url("/api/meetings/{m}"))
        .json(&json!({"title": "Annat"}))
        .send()
        .await
        .unwrap();
    assert_eq!(details.status(), StatusCode::CONFLICT);
}

async fn exports_are_byte_identical_across_reloads_restarts_and_processes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = council_on(&db).await;
    let mut polis = c.ws("polis").await;
    let update = paragraph(
        &polis.doc,
        "section:polis-rapport",
        "Inbrott ökar i hela Stockholms stad.",
    );
    polis.send_raw(protocol::encode_update(&update)).await;
    polis
        .until("echo", |p| !p.section("section:polis-rapport").is_empty())
        .await;
    let hash = c.lock().await;
    c.post("chair", "/api/meetings/{m}/signoffs", json!({"hash": hash}))
        .await;
    c.post(
        "justerare",
        "/api/meetings/{m}/signoffs",
        json!({"hash": hash}),
    )
    .await;
    let formats = ["json", "html", "md", "pdf"];
    let mut first = HashMap::new();
    for format in formats {
        let path = format!("/api/meetings/{{m}}/protocol.{format}");
        let a = c.bytes("member", &path).await;
        let b = c.bytes("member", &path).await;
        assert_eq!(a, b, "{format}: same bytes on reload");
        first.insert(format, a);
    }
    let tokens = c.tokens.clone();
    let meeting = c.meeting.id;
    c.server.stop().await;
    // A restart, in this process.
    let restarted = TestServer::start(&db).await;
    for format in formats {
        let url = restarted.http(&format!("/api/meetings/{meeting}/protocol.{format}"));
        let response = bearer_client(&tokens["member"])
            .get(url)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.bytes().await.unwrap().to_vec(),
            first[format],
            "{format} after a restart"
        );
    }
    restarted.stop().await;
    // Another process renders the same protocol.
    for format in formats {
        let out = Cli::on(&db)
            .args([
                "meeting",
                "export",
                &meeting.to_string(),
                "--format",
                format,
            ])
            .run();
        assert!(out.ok, "{}", out.stderr);
        assert_eq!(out.stdout, first[format], "{format} from another process");
    }
    let canonical = &first["json"];
    assert_eq!(
        protokoll::finalise::sha256_hex(canonical),
        hash,
        "the hash is the canonical JSON's"
    );
    for format in ["html", "md", "pdf"] {
        assert!(
            String::from_utf8_lossy(&first[format]).contains(&hash) || format == "pdf",
            "{format} names the hash"
        );
    }
}

fn run(tool: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} must be installed (poppler-utils): {e}"));
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn the_pdf_claims_pdf_a_2b_and_embeds_every_font(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = council_on(&db).await;
    let hash = c.lock().await;
    let pdf = c.bytes("member", "/api/meetings/{m}/protocol.pdf").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("protokoll.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let path = path.to_str().unwrap();
    let meta = run("pdfinfo", &["-meta", path]);
    assert!(
        meta.contains("<pdfaid:part>2</pdfaid:part>") || meta.contains("pdfaid:part=\"2\""),
        "{meta}"
    );
    assert!(
        meta.contains("<pdfaid:conformance>B</pdfaid:conformance>")
            || meta.contains("pdfaid:conformance=\"B\""),
        "{meta}"
    );
    let fonts = run("pdffonts", &[path]);
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(!rows.is_empty(), "{fonts}");
    for row in rows {
        // name type encoding emb sub uni object ID
        let cols: Vec<&str> = row.split_whitespace().collect();
        let emb = cols[cols.len() - 5];
        assert_eq!(emb, "yes", "font not embedded: {row}");
    }
    let text = run("pdftotext", &[path, "-"]);
    assert!(text.contains(&hash), "the PDF names the hash");
    assert!(text.contains("Låst för justering"));
}

async fn an_untouched_export_verifies_and_a_changed_one_does_not(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = council_on(&db).await;
    let hash = c.lock().await;
    c.post("chair", "/api/meetings/{m}/signoffs", json!({"hash": hash}))
        .await;
    c.post(
        "justerare",
        "/api/meetings/{m}/signoffs",
        json!({"hash": hash}),
    )
    .await;
    let anyone = reqwest::Client::new();
    for format in ["html", "md", "pdf", "json"] {
        let file = c
            .bytes("member", &format!("/api/meetings/{{m}}/protocol.{format}"))
            .await;
        let report: Value = anyone
            .post(c.url("/api/verify"))
            .body(file.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(report["matches"], true, "{format}: {report}");
        assert_eq!(report["protocol"]["hash"], hash.as_str());
        assert_eq!(report["protocol"]["state"], "verified");
        assert_eq!(report["protocol"]["signature"]["valid"], true, "{report}");
        assert_eq!(report["protocol"]["meeting_title"], "Lokala Brå 2018-03-09");
        let signed: Vec<&str> = report["protocol"]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(signed, ["chair (test)", "justerare (test)"]);
        // One character changed, in the middle of the file.
        let mut changed = file.clone();
        let at = changed.len() / 2;
        changed[at] = if changed[at] == b'x' { b'y' } else { b'x' };
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(changed).file_name("protokoll"),
        );
        let report: Value = anyone
            .post(c.url("/api/verify"))
            .multipart(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            report["matches"], false,
            "{format}: a changed file verified"
        );
        assert!(
            report["message"]
                .as_str()
                .unwrap()
                .starts_with("does not match")
        );
    }
    let by_hash: Value = get_json(&anyone, c.url(&format!("/api/verify/{hash}"))).await;
    assert_eq!(by_hash["matches"], true);
    assert_eq!(by_hash["matched"], "protocol");
    let page = get_text(&anyone, c.url(&format!("/verify?hash={}", "f".repeat(64)))).await;
    assert!(page.contains("Stämmer inte"));
    let keys: Value = get_json(&anyone, c.url("/.well-known/protokoll-signing-key")).await;
    let key_id = by_hash["protocol"]["signature"]["key_id"].as_str().unwrap();
    assert!(
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["key_id"] == key_id && k["current"] == true)
    );
}

crate::on_both_backends!(
    finalise_while_clients_type_keeps_or_refuses_every_update,
    a_second_server_that_was_not_told_of_the_lock_cannot_append,
    a_lock_made_with_the_cli_reaches_open_connections_through_the_document,
    sql_cannot_change_a_locked_protocol_or_append_to_its_log,
    a_group_commit_refuses_only_the_locked_meeting,
    only_the_right_roles_lock_reopen_sign_off_and_reject,
    the_agenda_and_participants_are_frozen_while_locked,
    exports_are_byte_identical_across_reloads_restarts_and_processes,
    the_pdf_claims_pdf_a_2b_and_embeds_every_font,
    an_untouched_export_verifies_and_a_changed_one_does_not,
);
