//! A PostgreSQL restart while people type, on one node (issue 23, defect
//! 1; the cluster's own case is part of `cluster.rs`), against a
//! PostgreSQL of this test's own. A commit waits up to 10 s for a
//! connection (the pool's acquire timeout), so a quick restart only delays
//! it; this test keeps the database away until commits fail. The first
//! commit that fails closes every
//! connection of the meeting with 1011 ("storage unavailable, reconnect")
//! and the room, which cannot rebuild its document from the store, goes
//! away; y-websocket keeps reconnecting (refused with 500 while the
//! database is away) with everything typed meanwhile in its document.
//! Once the database is back, the keystrokes typed between the socket
//! opening and the client's sync step 2 arriving build on the ones the
//! step 2 carries: they wait for it, and nothing is lost or refused.

use std::{net::SocketAddr, time::Duration};

use crate::{
    cluster::{Postgres, eventually, ready},
    helpers::*,
    interop::Typist,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_through_a_postgres_restart_on_one_node_loses_nothing_and_refuses_no_one() {
    init_logs();
    let pg = Postgres::start();
    let db = pg.create_database("protokoll").await;
    let server = TestServer::start(&db).await;
    let (meeting, scribe) = writable_meeting(&server.db, "Omstart").await;
    let (second, second_token) = user_with_token(&server.db, "scribe2", false).await;
    server
        .db
        .dir
        .set_participant(meeting.id, second.id, protokoll::people::Role::Secretary)
        .await
        .unwrap();
    let base = format!("ws://{}/sync", server.addr);
    let mut typists = vec![
        Typist::start(&base, meeting.id, "section:w0", &scribe).await,
        Typist::start(&base, meeting.id, "section:w1", &second_token).await,
    ];

    // Typing before, through and after the outage: the durations are the
    // scenario, the waits in between are for what the server reports.
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.stop("fast");
    eventually("not ready without Postgres", || async {
        ready(server.addr).await == Some(503)
    })
    .await;
    // A commit fails once the pool gives up waiting for a connection
    // (10 s): the meeting's connections are closed with 1011.
    eventually("the typists' connections closed for the outage", || async {
        closed_with(server.addr, 1011).await >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    pg.start_again();
    eventually("ready again", || async {
        ready(server.addr).await == Some(200)
    })
    .await;
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
        // 20 ms a character for 3.5 s and the outage.
        assert!(t.text.len() >= 100, "typed all along: {t:?}");
    }
    let expected: Vec<String> = typed
        .iter()
        .map(|t| format!("<paragraph>{}</paragraph>", t.text))
        .collect();
    let mut viewer = Client::synced(server.addr, meeting.id, &server.admin_token).await;
    viewer
        .until("everything typed", |v| {
            v.section("section:w0") == expected[0] && v.section("section:w1") == expected[1]
        })
        .await;
    let stored = stored_doc(server.store(), meeting.id).await;
    assert_eq!(fragment_text(&stored, "section:w0"), expected[0]);
    assert_eq!(fragment_text(&stored, "section:w1"), expected[1]);
    for typist in typists {
        typist.finish().await;
    }
    viewer.close().await;
    server.stop().await;
}

/// Connections the server has closed with `code`, from its metrics.
async fn closed_with(server: SocketAddr, code: u16) -> u64 {
    let text = reqwest::get(format!("http://{server}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("protokoll_connections_closed_total{{code=\"{code}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}
