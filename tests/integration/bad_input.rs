//! Bad input closes only the offending connection, with a close code and a
//! reason, and leaves the document and the database untouched.

use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;
use protokoll::sync::protocol;

const LIMIT: usize = 64 * 1024;

enum Attack {
    Garbage,
    TruncatedUpdate,
    UndecodableUpdate,
    Oversized,
    Text,
    /// A valid update followed by bytes no reader should skip over.
    TrailingBytes,
    /// A v2-encoded update, which a lenient v1 reader takes as empty.
    V2Update,
}

async fn bad_input_closes_only_the_sender(backend: Backend, attack: Attack, expected_code: u16) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start_with(
        &db,
        protokoll::config::ServerConfig {
            max_message_bytes: LIMIT,
            ..test_config()
        },
    )
    .await;
    let meeting = server.meeting("Bad input").await;
    let mut bystander = server.synced(meeting.id).await;
    bystander.write("section:skola", "before").await;
    let mut offender = server.synced(meeting.id).await;
    offender
        .until("bystander's edit", |c| {
            c.section("section:skola").contains("before")
        })
        .await;
    let stored_before = full_state(&stored_doc(server.store(), meeting.id).await);
    let log_before = server.store().log_len(meeting.id).await.unwrap();

    match attack {
        Attack::Garbage => offender.send_raw(vec![0xff, 0xfe, 0x00, 0x13, 0x37]).await,
        Attack::TruncatedUpdate => {
            let mut other = yrs::Doc::new();
            let update = sample_update(&mut other);
            let frame = protocol::encode_update(&update);
            offender.send_raw(frame.slice(..frame.len() - 3)).await
        }
        Attack::UndecodableUpdate => {
            // Well-framed sync update whose payload is not a Yjs update.
            offender
                .send_raw(protocol::encode_update(&[
                    0x05, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01,
                ]))
                .await
        }
        Attack::Oversized => {
            let mut other = yrs::Doc::new();
            let huge = "x".repeat(LIMIT + 1);
            let update = {
                use yrs::{Text, Transact};
                let text = other.get_or_insert_text("section:skola");
                let mut txn = other.transact_mut();
                text.insert(&mut txn, 0, &huge);
                txn.encode_update_v1()
            };
            let _ = &mut other;
            offender.send_raw(protocol::encode_update(&update)).await
        }
        Attack::Text => offender.send_message(Message::Text("hello".into())).await,
        Attack::TrailingBytes => {
            let mut other = yrs::Doc::new();
            let mut update = sample_update(&mut other);
            update.extend_from_slice(&[0, 0]);
            offender.send_raw(protocol::encode_update(&update)).await
        }
        Attack::V2Update => {
            use yrs::{ReadTxn, StateVector, Transact};
            let mut other = yrs::Doc::new();
            sample_update(&mut other);
            let v2 = other
                .transact()
                .encode_state_as_update_v2(&StateVector::default());
            offender.send_raw(protocol::encode_update(&v2)).await
        }
    }
    let (code, reason) = offender.closed_by_server().await;
    assert_eq!(code, expected_code, "close reason: {reason}");
    assert!(!reason.is_empty(), "a close reason is given");

    // Everyone else carries on.
    bystander.write("section:skola", "after").await;
    let mut late = server.synced(meeting.id).await;
    late.until("bystander's later edit", |c| {
        c.section("section:skola").contains("after")
    })
    .await;
    assert_eq!(
        late.section("section:skola"),
        "<paragraph>before</paragraph><paragraph>after</paragraph>"
    );

    // The store holds exactly the good edits: one more update, nothing else.
    let stored_after = stored_doc(server.store(), meeting.id).await;
    assert_eq!(full_state(&stored_after), full_state(&bystander.doc));
    assert_ne!(full_state(&stored_after), stored_before);
    assert_eq!(
        server.store().log_len(meeting.id).await.unwrap(),
        log_before + 1
    );
    server.stop().await;
}

fn sample_update(doc: &mut yrs::Doc) -> Vec<u8> {
    use yrs::{Text, Transact};
    let text = doc.get_or_insert_text("section:skola");
    let mut txn = doc.transact_mut();
    text.insert(&mut txn, 0, "truncated");
    txn.encode_update_v1()
}

async fn garbage_frame_closes_only_the_sender(backend: Backend) {
    bad_input_closes_only_the_sender(backend, Attack::Garbage, 1007).await
}

async fn truncated_update_closes_only_the_sender(backend: Backend) {
    bad_input_closes_only_the_sender(backend, Attack::TruncatedUpdate, 1007).await
}

async fn undecodable_update_closes_only_the_sender(backend: Backend) {
    bad_input_closes_only_the_sender(backend, Attack::UndecodableUpdate, 1007).await
}

async fn oversized_message_closes_only_the_sender(backend: Backend) {
    bad_input_closes_only_the_sender(backend, Attack::Oversized, 1009).await
}

async fn text_frame_closes_only_the_sender(backend: Backend) {
    bad_input_closes_only_the_sender(backend, Attack::Text, 1003).await
}

async fn update_with_trailing_bytes_closes_only_the_sender(backend: Backend) {
    bad_input_closes_only_the_sender(backend, Attack::TrailingBytes, 1007).await
}

async fn v2_update_closes_only_the_sender(backend: Backend) {
    bad_input_closes_only_the_sender(backend, Attack::V2Update, 1007).await
}

crate::on_both_backends!(
    update_with_trailing_bytes_closes_only_the_sender,
    v2_update_closes_only_the_sender,
    garbage_frame_closes_only_the_sender,
    truncated_update_closes_only_the_sender,
    undecodable_update_closes_only_the_sender,
    oversized_message_closes_only_the_sender,
    text_frame_closes_only_the_sender,
);
