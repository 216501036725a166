//! A client that stops reading is disconnected with a reason; the others
//! keep receiving.

use crate::helpers::*;

async fn a_client_that_stops_reading_is_disconnected_while_others_keep_receiving(backend: Backend) {
    const UPDATES: usize = 800;
    let db = TestDb::new(backend).await;
    let server = TestServer::start_with(
        &db,
        protokoll::config::ServerConfig {
            outbound_queue_bytes: 1024 * 1024,
            // 25 MiB from one writer: past the default document cap and
            // byte rate, which are not what this test is about.
            max_document_bytes: 64 * 1024 * 1024,
            update_bytes_rate: 0.0,
            ..test_config()
        },
    )
    .await;
    let meeting = server.meeting("Slow consumer").await;
    let mut stuck = server.synced(meeting.id).await;
    let mut reader = server.synced(meeting.id).await;
    let mut writer = server.synced(meeting.id).await;

    // `stuck` reads nothing from here on. 800 paragraphs of 32 KiB (25 MiB)
    // are far more than the socket buffers and its 1 MiB queue can hold.
    // The healthy reader keeps up: each update is written once the previous
    // one has reached it.
    let chunk = "ä".repeat(16 * 1024);
    for i in 0..UPDATES {
        writer.write("section:polis", &format!("{i}:{chunk}")).await;
        reader
            .until("the update", |c| {
                c.paragraphs("section:polis") as usize == i + 1
            })
            .await;
    }

    // Now it reads again: first whatever was already on its way, then the
    // close frame with the reason.
    let (code, reason) = stuck.closed_by_server().await;
    assert_eq!(code, 1013, "{reason}");
    assert!(reason.contains("queue full"), "{reason}");
    assert!(
        (stuck.paragraphs("section:polis") as usize) < UPDATES,
        "the stuck client did not get everything"
    );

    // And after reconnecting it resyncs to the full state.
    let resynced = server.synced(meeting.id).await;
    assert_eq!(
        resynced.section("section:polis"),
        reader.section("section:polis")
    );
    server.stop().await;
}

crate::on_both_backends!(a_client_that_stops_reading_is_disconnected_while_others_keep_receiving);
