//! Nothing accepted is lost: across restarts, SIGKILL, and compaction.

use std::time::Instant;

use protokoll::store::AppendBatch;
use rand::Rng;
use yrs::{Doc, GetString, ReadTxn, Text, Transact, Update, WriteTxn, updates::decoder::Decode};

use crate::helpers::*;

async fn every_update_is_there_after_a_restart(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let meeting = server.meeting("Restart").await;
    let mut a = server.synced(meeting.id).await;
    let mut b = server.synced(meeting.id).await;
    for i in 0..50 {
        a.write("section:polis", &format!("a{i}")).await;
        b.write("section:skola", &format!("b{i}")).await;
    }
    let all = |c: &Client| {
        c.section("section:polis").contains("a49") && c.section("section:skola").contains("b49")
    };
    a.until("b's edits", all).await;
    b.until("a's edits", all).await;
    let before = full_state(&a.doc);
    server.stop().await;

    let server = TestServer::start(&db).await;
    let reloaded = server.synced(meeting.id).await;
    assert_eq!(
        reloaded.section("section:polis"),
        a.section("section:polis")
    );
    assert_eq!(
        reloaded.section("section:skola"),
        a.section("section:skola")
    );
    assert_eq!(
        reloaded.doc.transact().state_vector(),
        Doc::new_from(&before).transact().state_vector()
    );
    server.stop().await;
}

trait NewFrom {
    fn new_from(state: &[u8]) -> Doc;
}

impl NewFrom for Doc {
    fn new_from(state: &[u8]) -> Doc {
        let doc = Doc::new();
        doc.transact_mut()
            .apply_update(Update::decode_v1(state).unwrap())
            .unwrap();
        doc
    }
}

/// Writers type continuously while the server is killed with SIGKILL at a
/// random moment. Whatever any client saw broadcast must be in the document
/// the restarted server loads, because the server broadcasts only after the
/// commit.
async fn every_broadcast_update_survives_a_sigkill(backend: Backend) {
    let db = TestDb::new(backend).await;
    let database = db.database().await;
    let (meeting, token) = writable_meeting(&database, "Crash").await;
    let server = ProcessServer::start(&db).await;
    let kill_after = rand::rng().random_range(30..300);

    let mut writers = Vec::new();
    for w in 0..3 {
        let addr = server.addr;
        let token = token.clone();
        writers.push(tokio::spawn(async move {
            let mut client = Client::synced(addr, meeting.id, &token).await;
            let mut pace = tokio::time::interval(std::time::Duration::from_millis(2));
            let mut i = 0;
            loop {
                tokio::select! {
                    _ = pace.tick() => {
                        let update = {
                            let mut txn = client.doc.transact_mut();
                            let t = txn.get_or_insert_text(format!("section:w{w}").as_str());
                            let len = t.len(&txn);
                            t.insert(&mut txn, len, &format!("[{w}:{i}]"));
                            txn.encode_update_v1()
                        };
                        i += 1;
                        let frame = protokoll::sync::protocol::encode_update(&update);
                        if client.try_send(frame).await.is_err() {
                            break;
                        }
                    }
                    alive = client.step() => if !alive { break },
                }
            }
            client.broadcasts
        }));
    }
    let mut observer = Client::synced(server.addr, meeting.id, &token).await;
    observer
        .until("enough broadcasts before the kill", |c| {
            c.broadcasts.len() >= kill_after
        })
        .await;
    server.kill().await;
    while observer.step().await {}

    let mut seen = observer.broadcasts;
    for w in writers {
        seen.extend(w.await.unwrap());
    }
    assert!(seen.len() >= kill_after);

    let server = ProcessServer::start(&db).await;
    let reloaded = Client::synced(server.addr, meeting.id, &token).await;
    let reloaded_state = full_state(&reloaded.doc);
    let merged = Doc::new_from(&reloaded_state);
    {
        let mut txn = merged.transact_mut();
        for update in &seen {
            txn.apply_update(Update::decode_v1(update).unwrap())
                .unwrap();
        }
    }
    assert_eq!(
        merged.transact().state_vector(),
        reloaded.doc.transact().state_vector(),
        "an update seen by a client before the crash is missing after restart \
         ({} broadcasts seen, kill after {kill_after})",
        seen.len()
    );
    for w in 0..3 {
        let name = format!("section:w{w}");
        let text = |d: &Doc| {
            let txn = d.transact();
            txn.get_text(name.as_str())
                .map(|t| t.get_string(&txn))
                .unwrap_or_default()
        };
        assert_eq!(text(&merged), text(&reloaded.doc));
    }
    server.kill().await;
}

/// Builds `n` single-character typing updates into one section.
fn typing_history(n: usize) -> (Vec<Vec<u8>>, Doc) {
    let doc = Doc::with_client_id(4242);
    let mut updates = Vec::with_capacity(n);
    let text = doc.get_or_insert_text("section:typing");
    for i in 0..n {
        let mut txn = doc.transact_mut();
        let len = text.len(&txn);
        let c = char::from(b'a' + (i % 26) as u8).to_string();
        text.insert(&mut txn, len, &c);
        updates.push(txn.encode_update_v1());
    }
    (updates, doc)
}

async fn a_meeting_with_100000_logged_updates_reopens_from_a_snapshot(backend: Backend) {
    const UPDATES: usize = 100_000;
    let db = TestDb::new(backend).await;
    let database = db.database().await;
    let store = database.docs.clone();
    let (meeting, _) = writable_meeting(&database, "Long history").await;
    let (updates, expected) = typing_history(UPDATES);
    for chunk in updates.chunks(10_000) {
        store
            .append_updates(&[AppendBatch {
                meeting: meeting.id,
                updates: chunk
                    .iter()
                    .map(|u| bytes::Bytes::from(u.clone()))
                    .collect(),
            }])
            .await
            .unwrap();
    }
    assert_eq!(store.log_len(meeting.id).await.unwrap(), UPDATES as u64);
    let expected_text = {
        let txn = expected.transact();
        txn.get_text("section:typing").unwrap().get_string(&txn)
    };
    let text_of = |c: &Client| {
        let txn = c.doc.transact();
        txn.get_text("section:typing")
            .map(|t| t.get_string(&txn))
            .unwrap_or_default()
    };

    // First open replays the whole log, then folds it into a snapshot.
    let server = TestServer::start(&db).await;
    let started = Instant::now();
    let first = server.synced(meeting.id).await;
    let from_log = started.elapsed();
    assert!(
        text_of(&first) == expected_text,
        "first open has the whole text"
    );
    drop(first);
    server.stop().await;
    let stored = store.load_document(meeting.id).await.unwrap();
    assert!(stored.snapshot.is_some(), "a snapshot was written");
    assert!(stored.updates.is_empty(), "the log was compacted");
    assert_eq!(store.log_len(meeting.id).await.unwrap(), 0);

    let server = TestServer::start(&db).await;
    let started = Instant::now();
    let reopened = server.synced(meeting.id).await;
    let from_snapshot = started.elapsed();
    assert!(
        text_of(&reopened) == expected_text,
        "reopened document has the whole text"
    );
    assert_eq!(
        reopened.doc.transact().state_vector(),
        expected.transact().state_vector()
    );
    eprintln!(
        "[{backend:?}] {UPDATES} updates: first open from the log {from_log:?}, \
         reopen from the snapshot {from_snapshot:?} (connect to sync step 2)"
    );
    server.stop().await;
}

/// One group commit for two meetings: each gets the sequence number of its
/// own last row; a snapshot hides the rows it covers at once, and
/// compaction deletes them later.
async fn a_group_commit_reports_each_meetings_last_row(backend: Backend) {
    let db = TestDb::new(backend).await;
    let database = db.database().await;
    let store = database.docs.clone();
    let first = create_meeting(&database, "First").await;
    let second = create_meeting(&database, "Second").await;
    let (updates, _) = typing_history(5);
    let batch =
        |meeting: &protokoll::meeting::Meeting, range: std::ops::Range<usize>| AppendBatch {
            meeting: meeting.id,
            updates: updates[range]
                .iter()
                .map(|u| bytes::Bytes::from(u.clone()))
                .collect(),
        };
    let seqs = store
        .append_updates(&[batch(&first, 0..3), batch(&second, 3..5)])
        .await
        .unwrap();
    let logged = |doc: &protokoll::store::StoredDocument| {
        doc.updates
            .iter()
            .map(|(seq, data)| (*seq, data.clone()))
            .collect::<Vec<_>>()
    };
    let first_log = logged(&store.load_document(first.id).await.unwrap());
    let second_log = logged(&store.load_document(second.id).await.unwrap());
    assert_eq!(
        first_log.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
        updates[0..3].to_vec()
    );
    assert_eq!(
        second_log
            .iter()
            .map(|(_, d)| d.clone())
            .collect::<Vec<_>>(),
        updates[3..5].to_vec()
    );
    assert_eq!(seqs, vec![first_log[2].0, second_log[1].0]);
    assert!(first_log.windows(2).all(|w| w[0].0 < w[1].0));
    match backend {
        // One writer at a time: the global sequence follows arrival order.
        Backend::Sqlite => assert!(
            first_log[2].0 < second_log[0].0,
            "arrival order across meetings"
        ),
        // Positions are per meeting (migration 0006): each log counts from
        // one, without holes.
        Backend::Postgres => {
            assert_eq!(
                first_log.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
                [1, 2, 3]
            );
            assert_eq!(
                second_log.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
                [1, 2]
            );
        }
    }

    // A snapshot covering the first two rows hides them from loading...
    let upto = first_log[1].0;
    store
        .write_snapshot(first.id, b"state", upto)
        .await
        .unwrap();
    let loaded = store.load_document(first.id).await.unwrap();
    assert_eq!(loaded.snapshot.as_ref().map(|s| s.upto), Some(upto));
    assert_eq!(logged(&loaded), first_log[2..].to_vec());
    assert_eq!(store.log_len(first.id).await.unwrap(), 3);
    // ...and compaction deletes them, and only them.
    store.compact_log(first.id, upto).await.unwrap();
    assert_eq!(store.log_len(first.id).await.unwrap(), 1);
    assert_eq!(store.log_len(second.id).await.unwrap(), 2);
}

/// A reopened meeting answers new clients from its stored snapshot while
/// the document is rebuilt (clients that hold part of the meeting get what
/// they lack, from the snapshot's bytes); clients that joined meanwhile then
/// get the server's state vector, and their edits are applied, stored and
/// broadcast as usual.
async fn a_reopened_meeting_serves_its_snapshot_then_takes_edits(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let meeting = server.meeting("Reopened").await;
    let mut a = server.synced(meeting.id).await;
    let mut b = server.synced(meeting.id).await;
    let mut half = Vec::new();
    for i in 0..200 {
        a.write("section:polis", &format!("p{i} ")).await;
        if i == 99 {
            half = a
                .doc
                .transact()
                .encode_state_as_update_v1(&Default::default());
        }
    }
    b.until("a's edits", |c| c.section("section:polis").contains("p199"))
        .await;
    let before = a.section("section:polis");
    drop((a, b));
    server.stop().await;
    let stored = db
        .database()
        .await
        .docs
        .load_document(meeting.id)
        .await
        .unwrap();
    assert!(stored.snapshot.is_some() && stored.updates.is_empty());

    let server = TestServer::start(&db).await;
    // Several clients at once, while the room opens; one of them holds the
    // first half of the meeting already.
    let resumed = async {
        let mut f = Client::resume(server.addr, meeting.id, &server.writer(), &half).await;
        f.until("synced", |c| c.synced).await;
        f
    };
    let (mut c, mut d, e, f) = tokio::join!(
        server.synced(meeting.id),
        server.synced(meeting.id),
        server.synced(meeting.id),
        resumed
    );
    for client in [&c, &d, &e, &f] {
        assert_eq!(client.section("section:polis"), before);
    }
    drop(f);
    c.write("section:skola", "after the restart").await;
    d.until("c's edit", |x| {
        x.section("section:skola").contains("after the restart")
    })
    .await;
    d.write("section:skola", " and more").await;
    c.until("d's edit", |x| {
        x.section("section:skola").contains("and more")
    })
    .await;
    drop((c, d, e));
    server.stop().await;

    let server = TestServer::start(&db).await;
    let reloaded = server.synced(meeting.id).await;
    assert_eq!(reloaded.section("section:polis"), before);
    assert!(reloaded.section("section:skola").contains("and more"));
}

crate::on_both_backends!(
    every_update_is_there_after_a_restart,
    every_broadcast_update_survives_a_sigkill,
    a_meeting_with_100000_logged_updates_reopens_from_a_snapshot,
    a_group_commit_reports_each_meetings_last_row,
    a_reopened_meeting_serves_its_snapshot_then_takes_edits,
);
