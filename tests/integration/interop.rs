//! Interop with the reference npm clients (`yjs` + `y-websocket`, versions
//! pinned in `tests/interop/package.json`): Node providers and a Rust client
//! edit one meeting together and converge.

use std::{path::PathBuf, process::Stdio};

use base64::Engine;
use serde_json::Value;
use tokio::sync::OnceCell;
use yrs::{ReadTxn, StateVector, Transact, updates::decoder::Decode};

use crate::helpers::*;

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop")
}

/// Installs the pinned npm packages once per test run, if not yet there.
pub async fn npm_packages() -> &'static PathBuf {
    static DIR: OnceCell<PathBuf> = OnceCell::const_new();
    DIR.get_or_init(|| async {
        let dir = interop_dir();
        if !dir.join("node_modules/y-websocket").exists() {
            let status = tokio::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .await
                .expect("npm must be installed for the interop tests");
            assert!(status.success(), "npm ci failed in {}", dir.display());
        }
        dir
    })
    .await
}

/// `node SCRIPT ARGS...` in the interop folder, signed in with `token`;
/// killed if the test ends first.
async fn node(script: &str, args: &[String], token: &str) -> tokio::process::Command {
    let dir = npm_packages().await;
    let mut command = tokio::process::Command::new("node");
    command
        .arg(script)
        .args(args)
        .env("PROTOKOLL_TOKEN", token)
        .current_dir(dir)
        .kill_on_drop(true);
    command
}

type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// Starts a node script that is told what to do on its stdin and reports
/// in lines on its stdout.
fn converse(
    mut command: tokio::process::Command,
    stderr: Stdio,
) -> (tokio::process::Child, tokio::process::ChildStdin, Lines) {
    use tokio::io::AsyncBufReadExt;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("node must be installed for the interop tests");
    let stdin = child.stdin.take().unwrap();
    let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, stdin, lines)
}

/// The secretary's script of `ROUNDS` rounds (`reconnect.mjs`,
/// `offline.mjs`) in the meeting, conversing; the meeting's first server.
async fn rounds_script(
    server: &TestServer,
    meeting: protokoll::meeting::MeetingId,
    script: &str,
    rounds: usize,
) -> (tokio::process::Child, tokio::process::ChildStdin, Lines) {
    let args = [
        format!("ws://{}/sync", server.addr),
        meeting.to_string(),
        rounds.to_string(),
    ];
    let mut command = node(script, &args, &server.writer()).await;
    command.env("INTEROP_TIMEOUT_MS", "60000");
    converse(command, Stdio::piped())
}

async fn npm_clients_and_a_rust_client_converge(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let meeting = server.meeting("Interop").await;
    let mut rust = server.synced(meeting.id).await;

    let base = format!("ws://{}/sync", server.addr);
    let markers = ["node-1", "node-2", "rust-1"];
    let mut nodes = Vec::new();
    for marker in &markers[..2] {
        let mut args = vec![base.clone(), meeting.id.to_string(), marker.to_string()];
        args.extend(markers.map(String::from));
        let child = node("client.mjs", &args, &server.writer())
            .await
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node must be installed for the interop tests");
        nodes.push(child);
    }
    rust.write("section:interop", "rust-1").await;
    rust.until("both Node clients' paragraphs", |c| {
        let s = c.section("section:interop");
        s.contains("node-1") && s.contains("node-2")
    })
    .await;

    let rust_sv = rust.doc.transact().state_vector();
    for child in nodes {
        let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
            .await
            .expect("node client finishes in time")
            .unwrap();
        assert!(
            out.status.success(),
            "node client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
        assert_eq!(result["markers"], serde_json::json!(markers));
        assert_eq!(result["xml"], rust.section("section:interop"));
        let sv = base64::engine::general_purpose::STANDARD
            .decode(result["stateVector"].as_str().unwrap())
            .unwrap();
        assert_eq!(StateVector::decode_v1(&sv).unwrap(), rust_sv, "same state");
    }
    server.stop().await;
}

crate::on_both_backends!(npm_clients_and_a_rust_client_converge);

/// A real y-websocket client whose update the guard refuses gets the
/// permission-denied message and is disconnected; the others carry on.
async fn a_refused_npm_client_gets_permission_denied_and_is_disconnected(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let meeting = server.meeting("Refusal").await;
    // An agency user who is in the meeting but owns no section.
    let agency = server.db.dir.create_agency("Polis").await.unwrap().id;
    let (user, token) = agency_user_with_token(&server.db, "polis", false, Some(agency)).await;
    server
        .db
        .dir
        .set_participant(meeting.id, user.id, protokoll::people::Role::Member)
        .await
        .unwrap();
    let mut bystander = server.synced(meeting.id).await;

    let out = tokio::time::timeout(
        DEADLINE,
        node(
            "refused.mjs",
            &[
                format!("ws://{}/sync", server.addr),
                meeting.id.to_string(),
                "section:skola".into(),
            ],
            &token,
        )
        .await
        .output(),
    )
    .await
    .expect("node client finishes in time")
    .unwrap();
    assert!(
        out.status.success(),
        "node client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(result["denied"], true, "{result}");
    assert!(
        result["reason"].as_str().unwrap().contains("section skola"),
        "{result}"
    );
    assert_eq!(result["closeCode"], 4403, "{result}");

    bystander.write("section:skola", "still here").await;
    let mut late = server.synced(meeting.id).await;
    late.until("the bystander's edit", |c| {
        c.section("section:skola").contains("still here")
    })
    .await;
    assert_eq!(
        late.section("section:skola"),
        "<paragraph>still here</paragraph>"
    );
    server.stop().await;
}

mod refusal {
    use super::*;
    crate::on_both_backends!(a_refused_npm_client_gets_permission_denied_and_is_disconnected);
}

/// Finding 4 of the guard review: a y-websocket client whose socket drops
/// reconnects with the same document and client id, and must keep writing
/// in its section, round after round. Another person using that client id
/// is refused.
async fn an_npm_client_keeps_writing_across_ten_dropped_sockets(backend: Backend) {
    use tokio::io::AsyncWriteExt;

    const ROUNDS: usize = 10;
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let meeting = server.meeting("Flaky network").await;
    let mut viewer = Client::synced(server.addr, meeting.id, &server.admin_token).await;

    let (mut child, mut stdin, mut lines) =
        rounds_script(&server, meeting.id, "reconnect.mjs", ROUNDS).await;
    let mut victim = 0u64;
    for round in 0..ROUNDS {
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("the node client reports in time")
            .unwrap();
        let Some(line) = line else {
            let out = child.wait_with_output().await.unwrap();
            panic!(
                "node client ended in round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts[..2], ["wrote", &round.to_string()], "{line}");
        victim = parts[2].parse().unwrap();
        let marker = format!("round-{round}");
        viewer
            .until(&marker, |v| v.section("section:interop").contains(&marker))
            .await;
        stdin.write_all(b"next\n").await.unwrap();
    }
    let last = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("the node client finishes in time")
        .unwrap();
    assert_eq!(last.as_deref(), Some("done"));
    let status = child.wait().await.unwrap();
    assert!(status.success());
    let expected: String = (0..ROUNDS)
        .map(|i| format!("<paragraph>round-{i}</paragraph>"))
        .collect();
    assert_eq!(viewer.section("section:interop"), expected);

    // Another secretary of the meeting, who may write the same section,
    // under the first client's id.
    let (other, token) = user_with_token(&server.db, "scribe2", false).await;
    server
        .db
        .dir
        .set_participant(meeting.id, other.id, protokoll::people::Role::Secretary)
        .await
        .unwrap();
    let mut impostor = Client::connect(server.addr, meeting.id, &token).await;
    impostor.doc = yrs::Doc::with_client_id(victim);
    impostor.until("synced", |c| c.synced).await;
    impostor.write("section:interop", "impostor").await;
    let (code, reason) = impostor.closed_by_server().await;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.contains("another client"), "{reason}");
    server.stop().await;
}

mod reconnect {
    use super::*;
    crate::on_both_backends!(an_npm_client_keeps_writing_across_ten_dropped_sockets);
}

/// Yjs tidies redundant formatting marks (left by two people formatting the
/// same words at once) in every document that receives them, as a change of
/// its own: a browser showing a section it may not write sends such a
/// deletion too. It must stay connected (the deletion is not applied).
async fn a_viewer_whose_yjs_tidies_another_sections_formatting_stays_connected(backend: Backend) {
    use tokio::io::AsyncWriteExt;
    use yrs::{Text, WriteTxn, XmlFragment, XmlOut, types::Attrs};

    use crate::fixture::{AGENCY_SECTIONS, Council, POLIS, Plan, SKOLA};
    const PLAN: Plan = Plan {
        title: "Formatting",
        writable: false,
        agencies: &["Polis", "Skola"],
        sections: AGENCY_SECTIONS,
        people: &[POLIS, SKOLA],
    };
    let c = Council::start(backend, test_config(), &PLAN).await;
    let (server, meeting) = (&c.server, &c.meeting);
    let (polis_token, skola_token) = (&c.tokens["polis"], &c.tokens["skola"]);
    let mut first = Client::synced(server.addr, meeting.id, skola_token).await;
    first.write("section:skola", "skolans text").await;
    let mut second = Client::synced(server.addr, meeting.id, skola_token).await;
    second
        .until("the text", |c| {
            c.section("section:skola").contains("skolans")
        })
        .await;
    let args = [
        format!("ws://{}/sync", server.addr),
        meeting.id.to_string(),
        "section:skola".into(),
        "section:polis".into(),
    ];
    let (mut child, mut stdin, mut lines) =
        converse(node("tidy.mjs", &args, polis_token).await, Stdio::null());
    let mut next_line = async || {
        tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("the node client reports in time")
            .unwrap()
            .expect("a line")
    };
    assert_eq!(next_line().await, r#"{"synced":true}"#);
    // Both make the same words bold at once, neither seeing the other's.
    let bold = |doc: &yrs::Doc| {
        let mut txn = doc.transact_mut();
        let f = txn.get_or_insert_xml_fragment("section:skola");
        let Some(XmlOut::Element(p)) = f.get(&txn, 0) else {
            panic!("the paragraph")
        };
        let Some(XmlOut::Text(t)) = p.get(&txn, 0) else {
            panic!("its text")
        };
        t.format(&mut txn, 0, 7, Attrs::from([("bold".into(), true.into())]));
        txn.encode_update_v1()
    };
    let (a, b) = (bold(&first.doc), bold(&second.doc));
    first.send_raw(protocol_update(&a)).await;
    second.send_raw(protocol_update(&b)).await;
    let mut observer = Client::synced(server.addr, meeting.id, &server.admin_token).await;
    let done = |doc: &yrs::Doc| doc.transact().state_vector();
    let (first_sv, second_sv) = (done(&first.doc), done(&second.doc));
    let (first_id, second_id) = (first.doc.client_id(), second.doc.client_id());
    observer
        .until("both bolds", |c| {
            let sv = c.doc.transact().state_vector();
            sv.get(&first_id) >= first_sv.get(&first_id)
                && sv.get(&second_id) >= second_sv.get(&second_id)
        })
        .await;

    let first_line = next_line().await;
    let tidied: Value = serde_json::from_str(&first_line).unwrap();
    assert!(
        tidied["tidied"].as_u64().unwrap() > 0,
        "Yjs tidied the school's formatting: {tidied}"
    );
    // Its own paragraph, sent after the clean-up, arrives: the connection
    // carried on past the clean-up.
    observer
        .until("the viewer's own paragraph", |c| {
            c.section("section:polis").contains("after-tidy")
        })
        .await;
    stdin.write_all(b"report\n").await.unwrap();
    let report = next_line().await;
    assert_eq!(report, r#"{"connected":true}"#);
    assert!(child.wait().await.unwrap().success());
    // The school's text keeps every mark the school wrote.
    let stored = stored_doc(server.store(), meeting.id).await;
    assert_eq!(
        fragment_text(&stored, "section:skola"),
        observer.section("section:skola")
    );
    c.server.stop().await;
}

fn protocol_update(update: &[u8]) -> bytes::Bytes {
    protokoll::sync::protocol::encode_update(update)
}

mod tidy {
    use super::*;
    crate::on_both_backends!(a_viewer_whose_yjs_tidies_another_sections_formatting_stays_connected);
}

/// Issue 23, defect 1: a y-websocket client types offline, then types once
/// more the moment its socket opens. That keystroke reaches the server
/// before the offline ones (which travel in the client's sync step 2,
/// answering the server's sync step 1): it must wait for them, not be
/// refused as a gap in its client's history. Three rounds; every character
/// is stored and seen by another client, and nobody is refused.
async fn offline_keystrokes_and_one_typed_as_the_socket_opens_all_arrive(backend: Backend) {
    use tokio::io::AsyncWriteExt;

    const ROUNDS: usize = 3;
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let meeting = server.meeting("Offline").await;
    let mut viewer = Client::synced(server.addr, meeting.id, &server.admin_token).await;

    let (mut child, mut stdin, mut lines) =
        rounds_script(&server, meeting.id, "offline.mjs", ROUNDS).await;
    let mut expected = String::new();
    for round in 0..ROUNDS {
        expected.push_str(&format!("abcde{round}"));
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("the node client reports in time")
            .unwrap()
            .expect("a line from the node client");
        assert_eq!(
            line,
            format!("round {round} {expected}"),
            "round {round}: the client was not refused"
        );
    }
    let paragraph = format!("<paragraph>{expected}</paragraph>");
    viewer
        .until("every character typed", |v| {
            v.section("section:interop") == paragraph
        })
        .await;
    stdin.write_all(b"seen\n").await.unwrap();
    let last = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("the node client finishes in time")
        .unwrap()
        .expect("its result");
    let result: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(result["text"], expected.as_str(), "{result}");
    assert_eq!(result["closes"], serde_json::json!([]), "{result}");
    assert!(child.wait().await.unwrap().success());
    let stored = stored_doc(server.store(), meeting.id).await;
    assert_eq!(fragment_text(&stored, "section:interop"), paragraph);
    server.stop().await;
}

mod offline {
    use super::*;
    crate::on_both_backends!(offline_keystrokes_and_one_typed_as_the_socket_opens_all_arrive);
}

/// A y-websocket client (`tests/interop/typist.mjs`) typing a character
/// every 20 ms into a paragraph of its own in one section, reconnecting as
/// y-websocket does, until stopped.
pub struct Typist {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: Lines,
}

/// What a typist typed, and how its connections ended.
#[derive(Debug)]
pub struct Typed {
    pub text: String,
    pub closes: Vec<u16>,
}

impl Typist {
    /// Starts typing once synced; returns when it has begun.
    pub async fn start(
        ws_base: &str,
        meeting: protokoll::meeting::MeetingId,
        root: &str,
        token: &str,
    ) -> Self {
        let args = [ws_base.to_owned(), meeting.to_string(), root.to_owned()];
        let mut command = node("typist.mjs", &args, token).await;
        command.env("INTEROP_TIMEOUT_MS", "60000");
        let stderr = if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let (child, stdin, mut lines) = converse(command, stderr);
        let ready = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("the typist syncs in time")
            .unwrap();
        assert_eq!(ready.as_deref(), Some("ready"));
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// Stops typing; returns once everything typed has been sent on a
    /// synced connection (or the typist was refused). The typist stays
    /// connected until `finish`.
    pub async fn stop(&mut self) -> Typed {
        use tokio::io::AsyncWriteExt;
        self.stdin.write_all(b"stop\n").await.unwrap();
        let line = tokio::time::timeout(DEADLINE * 2, self.lines.next_line())
            .await
            .expect("the typist reports in time")
            .unwrap()
            .expect("the typist's report");
        let result: Value = serde_json::from_str(&line).unwrap();
        Typed {
            text: result["text"].as_str().unwrap().to_owned(),
            closes: result["closes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap() as u16)
                .collect(),
        }
    }

    pub async fn finish(mut self) {
        use tokio::io::AsyncWriteExt;
        self.stdin.write_all(b"exit\n").await.unwrap();
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("the typist exits in time")
            .unwrap();
        assert!(status.success());
    }
}

/// Issue 23, defect 4: a refused y-websocket client learns why (close code
/// 4403), never just that the connection dropped (1006, after which it
/// would reconnect and try again), even while it keeps typing, directly and
/// through nginx (the shipped configuration): the server waits for the
/// client's answer to its close frame before it drops the TCP connection,
/// instead of resetting a connection whose latest frames it has not read.
/// A write into that reset (the client's next keystroke, or nginx passing
/// one on) ends the connection before the close frame is read. Fifty
/// refusals in a row each way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_that_keeps_typing_reads_4403_every_time() {
    const ROUNDS: usize = 50;
    init_logs();
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db).await;
    let nginx = crate::cluster::Nginx::start(&[server.addr]).await;
    let meeting = server.meeting("Refusals").await;
    // A member writes nothing: every keystroke is refused.
    let (member, token) = user_with_token(&server.db, "ledamot", false).await;
    server
        .db
        .dir
        .set_participant(meeting.id, member.id, protokoll::people::Role::Member)
        .await
        .unwrap();
    for (way, addr) in [("directly", server.addr), ("through nginx", nginx.addr)] {
        let out = tokio::time::timeout(
            DEADLINE * 2,
            node(
                "refusals.mjs",
                &[
                    format!("ws://{addr}/sync"),
                    meeting.id.to_string(),
                    "section:interop".into(),
                    ROUNDS.to_string(),
                ],
                &token,
            )
            .await
            .env("INTEROP_TIMEOUT_MS", "110000")
            .output(),
        )
        .await
        .expect("node client finishes in time")
        .unwrap();
        assert!(
            out.status.success(),
            "node client failed {way}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
        let codes: Vec<u64> = result["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        assert_eq!(codes, vec![4403; ROUNDS], "{way}: {result}");
    }
    server.stop().await;
}
