//! `GET /sync/{meetingId}`: the WebSocket endpoint. It only pumps frames:
//! binary frames in are decoded and handed to the meeting's room; frames the
//! room queues for this connection are written out. It also keeps the
//! connection honest: size limits, pings, and closing with a reason; how
//! fast a client may send is decided by `sync::inflow`, this file only
//! stops reading for as long as it says.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{
        Path, State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    response::Response,
};
use futures::{SinkExt, StreamExt, stream::SplitSink};
use tracing::{Instrument, debug, info, info_span, warn};

use chrono::Utc;

use super::{
    AppState,
    auth::{CurrentUser, SyncUser},
    client::ClientIp,
    error::ApiError,
    sockets::Refusal,
};
use crate::{
    access::Principal,
    auth::Credential,
    meeting::MeetingId,
    sync::{
        CloseReason, Closer, JoinError, PeerSocket, RoomMsg,
        inflow::Inflow,
        peer::close_code,
        protocol::{Inbound, decode_frame},
    },
    telemetry::metric,
};

/// How long to try delivering the close frame to a client that may have
/// stopped reading before dropping the TCP connection outright.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// tungstenite's buffers. Small, because most connections are idle most of
/// the time; they grow on demand for large messages. Frames queued up to
/// `WRITE_BUFFER` bytes wait in tungstenite's buffer for the flush that ends
/// a batch (`write_queued`), so a batch is one write to the socket.
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 16 * 1024;
/// The most bytes of queued frames one batch takes before it flushes.
const WRITE_BATCH: usize = WRITE_BUFFER;

/// How long a server that is out of descriptors asks clients to wait.
const FULL_RETRY_AFTER_SECS: u64 = 10;

/// How long a socket the server closes waits for the client to answer its
/// close frame before the TCP connection is dropped. Dropping it at once
/// while the client's latest frames are still unread makes the kernel
/// answer with a reset, which can destroy the close frame (and the
/// permission-denied message before it) in the client's receive buffer:
/// the client then sees 1006 instead of the code, and reconnects.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Open a meeting's document. Signed-in participants and administrators
/// only; the upgrade is refused with 401 or 404 otherwise, and with 503
/// when the server's sockets are at their limit. A socket over its user's
/// or address's cap is closed at once with 4429.
pub async fn sync(
    State(app): State<AppState>,
    SyncUser(me): SyncUser,
    ClientIp(client): ClientIp,
    Path(meeting): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let (meeting, access) = app.meetings().open(&me.0.user, &meeting).await?;
    let meeting = meeting.id;
    let CurrentUser(me) = me;
    let full = || {
        warn!(%client, "refusing a WebSocket: the server's sockets are at their limit");
        ApiError::Busy(
            "the server has reached its connection limit; try again later",
            FULL_RETRY_AFTER_SECS,
        )
    };
    let slot = match app.sockets.acquire(me.user.id, client) {
        Ok(slot) => slot,
        Err(Refusal::Full) => return Err(full()),
        Err(refusal) => {
            // Accepted only to say why it closes; it still holds a
            // descriptor meanwhile, so it counts in the total.
            let Ok(slot) = app.sockets.acquire_for_refusal() else {
                return Err(full());
            };
            info!(%client, user_id = %me.user.id, %refusal, "closing a WebSocket over its cap");
            return Ok(ws.on_upgrade(move |socket| async move {
                refuse(socket, refusal).await;
                drop(slot);
            }));
        }
    };
    let principal = Principal::new(&me.user, access.role);
    let limit = app.config.max_message_bytes;
    Ok(ws
        .max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| {
            let span = info_span!(
                "connection",
                meeting_id = %meeting,
                user_id = %me.user.id,
                %client,
            );
            let tracker = app.tracker.clone();
            async move {
                let _task = tracker.token();
                let _slot = slot;
                metrics::counter!(metric::CONNECTIONS_TOTAL).increment(1);
                metrics::gauge!(metric::CONNECTIONS_OPEN).increment(1);
                serve(app, meeting, principal, me.credential, socket).await;
                metrics::gauge!(metric::CONNECTIONS_OPEN).decrement(1);
            }
            .instrument(span)
        }))
}

/// Closes an accepted socket at once with 4429 and the reason, waiting
/// briefly for the client's answer so the connection ends cleanly.
async fn refuse(mut socket: WebSocket, refusal: Refusal) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::TOO_MANY,
            reason: refusal.to_string().into(),
        })))
        .await;
    metrics::counter!(metric::CONNECTIONS_CLOSED, "code" => close_code::TOO_MANY.to_string())
        .increment(1);
    let (_, mut stream) = socket.split();
    linger(&mut stream).await;
}

/// After the server's close frame has gone out: reads (and drops) whatever
/// the client still sends until its answering close frame, for at most
/// `CLOSE_LINGER`, so that the TCP connection ends with nothing unread
/// (see `CLOSE_LINGER`).
async fn linger(stream: &mut futures::stream::SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn serve(
    app: AppState,
    meeting: MeetingId,
    principal: Arc<Principal>,
    credential: Credential,
    socket: WebSocket,
) {
    let (mut sink, mut stream) = socket.split();
    let (room, peer, socket) = match app.rooms.join(meeting, principal.clone()).await {
        Ok(joined) => joined,
        Err(e) => {
            let code = match e {
                JoinError::ShuttingDown => close_code::GOING_AWAY,
                JoinError::Unavailable => close_code::INTERNAL_ERROR,
            };
            let _ = send_close(&mut sink, &CloseReason::new(code, e.to_string())).await;
            linger(&mut stream).await;
            return;
        }
    };
    debug!(peer, "joined");
    let closer = socket.closer.clone();
    // Revocations made elsewhere (another node, the CLI) are found by the
    // node's recheck (`live::recheck`) through this registration.
    let _registration = app.live.register(meeting, &principal, &credential, &closer);
    // A session's end closes the connection at that instant.
    let expiry = credential.expires_at().map(|at| {
        let left = (at - Utc::now()).to_std().unwrap_or_default();
        tokio::time::Instant::now() + left
    });
    let session_end = async move {
        match expiry {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(session_end);
    let ping_every = app.config.ping_interval();
    let writer = tokio::spawn(write_loop(sink, socket, ping_every).in_current_span());

    let limit = app.config.max_message_bytes;
    // Flood control (see `sync::inflow`): a client that outruns its
    // buckets is not read from until they have refilled; presence is
    // coalesced.
    let mut inflow = Inflow::new(&app.config.limits(), std::time::Instant::now());
    let mut resume_at: Option<tokio::time::Instant> = None;
    // A client that sends nothing, not even a pong, for two ping intervals
    // is gone.
    let silence = ping_every * 2;
    // A deadline, not a timeout around each read: the presence and resume
    // wake-ups below restart the loop and must not restart the count.
    let mut heard = tokio::time::Instant::now();
    // The waits that last the whole connection are made once: a new close
    // or shutdown wait per frame registered and unregistered a waiter, and
    // a new silence timer per frame went in and out of the timer wheel.
    // The silence timer is moved to the real deadline when it fires early.
    let closed = closer.closed();
    let shutdown = app.shutdown.cancelled();
    let silent = tokio::time::sleep_until(heard + silence);
    tokio::pin!(closed, shutdown, silent);
    // Whether the client may still send: unless it closed or the
    // connection broke, its answer to our close frame is waited for.
    let mut client_open = true;
    loop {
        let presence_at = inflow
            .presence_deadline()
            .map(tokio::time::Instant::from_std);
        let next = tokio::select! {
            _ = &mut closed => break,
            _ = sleep_until_some(resume_at), if resume_at.is_some() => {
                resume_at = None;
                // Not reading meant not hearing pongs either.
                heard = heard.max(tokio::time::Instant::now());
                continue;
            }
            _ = sleep_until_some(presence_at), if presence_at.is_some() => {
                let Some(batch) = inflow.presence_due(std::time::Instant::now()) else {
                    continue;
                };
                match forward(&room, peer, vec![batch], &closer, closed.as_mut()).await {
                    Forwarded::Yes => continue,
                    Forwarded::Closed => break,
                }
            }
            _ = &mut shutdown => {
                closer.close(CloseReason::new(close_code::GOING_AWAY, "server shutting down"));
                break;
            }
            _ = &mut session_end => {
                closer.close(CloseReason::new(close_code::UNAUTHORIZED, "session expired"));
                break;
            }
            _ = &mut silent, if resume_at.is_none() => {
                if heard + silence > tokio::time::Instant::now() {
                    silent.as_mut().reset(heard + silence);
                    continue;
                }
                closer.close(CloseReason::new(
                    close_code::GOING_AWAY,
                    "no answer to ping",
                ));
                break;
            }
            next = stream.next(), if resume_at.is_none() => {
                heard = tokio::time::Instant::now();
                next
            }
        };
        let frame = match next {
            None | Some(Ok(Message::Close(_))) => {
                client_open = false;
                break;
            }
            Some(Err(e)) => {
                if is_too_big(&e) {
                    reject(
                        &closer,
                        close_code::MESSAGE_TOO_BIG,
                        format!("message larger than {limit} bytes"),
                    );
                } else {
                    client_open = false;
                    debug!(error = %e, "connection error");
                }
                break;
            }
            Some(Ok(Message::Text(_))) => {
                reject(
                    &closer,
                    close_code::UNSUPPORTED_DATA,
                    "text frames are not part of the protocol".into(),
                );
                break;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(frame))) => frame,
        };
        metrics::counter!(metric::BYTES_IN).increment(frame.len() as u64);
        let messages = match decode_frame(&frame) {
            Ok(messages) => messages,
            Err(e) => {
                reject(&closer, close_code::INVALID_PAYLOAD, e.to_string());
                break;
            }
        };
        let now = std::time::Instant::now();
        let (passed, cost) = inflow.sort(messages, now);
        if !passed.is_empty() {
            match forward(&room, peer, passed, &closer, closed.as_mut()).await {
                Forwarded::Yes => {}
                Forwarded::Closed => break,
            }
        }
        if let Some(slow) = inflow.charge(cost, frame.len(), now) {
            if slow.first {
                info!(
                    limit = slow.limit,
                    wait_ms = slow.wait.as_millis() as u64,
                    "slowing a connection down: it sends faster than allowed"
                );
            }
            resume_at = Some(tokio::time::Instant::from_std(now) + slow.wait);
        }
    }
    let _ = room.send(RoomMsg::Leave { peer }).await;
    closer.close(CloseReason::new(1000, ""));
    // The writer sends the close frame (after the reason's last frame).
    let _ = writer.await;
    if client_open {
        linger(&mut stream).await;
    }
    if let Some(reason) = closer.reason() {
        metrics::counter!(metric::CONNECTIONS_CLOSED, "code" => reason.code.to_string())
            .increment(1);
    }
    debug!(peer, "left");
}

enum Forwarded {
    Yes,
    /// The connection is closing (or the room has stopped, in which case it
    /// has been asked to close).
    Closed,
}

/// Hands messages to the room, waiting while its queue is full (which slows
/// this client down) but not past a close request.
async fn forward(
    room: &crate::sync::RoomHandle,
    peer: crate::sync::PeerId,
    messages: Vec<Inbound>,
    closer: &Closer,
    closed: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Forwarded {
    let delivered = tokio::select! {
        sent = room.send(RoomMsg::Inbound { peer, messages }) => sent.is_ok(),
        _ = closed => return Forwarded::Closed,
    };
    if !delivered {
        closer.close(CloseReason::new(
            close_code::INTERNAL_ERROR,
            "meeting closed",
        ));
        return Forwarded::Closed;
    }
    Forwarded::Yes
}

/// Sleeps until `at`; forever if there is none (guarded by the caller).
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn reject(closer: &Closer, code: u16, reason: String) {
    warn!(code, %reason, "closing connection: bad input");
    metrics::counter!(metric::MESSAGES_REJECTED).increment(1);
    closer.close(CloseReason::new(code, reason));
}

fn is_too_big(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(tungstenite::Error::Capacity(_)) = err.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut socket: PeerSocket,
    ping_every: Duration,
) {
    let closer = socket.closer.clone();
    let bytes_out = metrics::counter!(metric::BYTES_OUT);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    // One wait for the close request for the whole connection: a new one
    // per frame registered and unregistered a waiter (two mutex locks).
    let closed = closer.closed();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            biased;
            _ = &mut closed => break,
            frame = socket.next_frame() => {
                let Some(frame) = frame else {
                    // The room dropped us without a reason: it has stopped.
                    closer.close(CloseReason::new(close_code::INTERNAL_ERROR, "meeting closed"));
                    break;
                };
                tokio::select! {
                    sent = write_queued(&mut sink, &mut socket, frame) => match sent {
                        Ok(len) => bytes_out.increment(len),
                        Err(_) => {
                            closer.close(CloseReason::new(close_code::GOING_AWAY, "connection lost"));
                            break;
                        }
                    },
                    // A client that stopped reading blocks the send; the
                    // room's close request must still get through.
                    _ = &mut closed => break,
                }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(bytes::Bytes::new())).await.is_err() {
                    closer.close(CloseReason::new(close_code::GOING_AWAY, "connection lost"));
                    break;
                }
            }
        }
    }
    if let Some(reason) = closer.reason() {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, send_close(&mut sink, reason)).await;
    }
}

/// Writes `first` and whatever else is queued for the client by now (up to
/// `WRITE_BATCH` bytes) with one write to the socket instead of one per
/// frame. Sending is most of the server's CPU when fanning out; how often a
/// writer finds more than one frame queued depends on the load (the room
/// already merges updates that arrive together into one frame, see
/// BENCHMARKS.md). Returns the bytes written.
async fn write_queued(
    sink: &mut SplitSink<WebSocket, Message>,
    socket: &mut PeerSocket,
    first: bytes::Bytes,
) -> Result<u64, axum::Error> {
    let mut len = first.len();
    sink.feed(Message::Binary(first)).await?;
    while len < WRITE_BATCH {
        let Some(frame) = socket.try_next_frame() else {
            break;
        };
        len += frame.len();
        sink.feed(Message::Binary(frame)).await?;
    }
    sink.flush().await?;
    Ok(len as u64)
}

async fn send_close(
    sink: &mut SplitSink<WebSocket, Message>,
    reason: &CloseReason,
) -> Result<(), axum::Error> {
    if let Some(frame) = &reason.last_frame {
        sink.send(Message::Binary(frame.clone())).await?;
    }
    sink.send(Message::Close(Some(CloseFrame {
        code: reason.code,
        reason: reason.reason.as_ref().into(),
    })))
    .await
}
