//! A minimal in-process sync server for end-to-end tests of the client:
//! one room, speaks either framing, relays every update to every client
//! (sender included, as the reference servers do) and, in Hocuspocus mode,
//! acks every update and answers the auth message.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use futures::{SinkExt, StreamExt};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::{accept_async, tungstenite::Message};

use crate::wire::{
    Framing, HP_AUTH_AUTHENTICATED, HP_SYNC_STATUS, Inbound, MSG_AUTH, Protocol, write_string,
    write_var,
};

#[derive(Default)]
struct Room {
    clients: Vec<mpsc::UnboundedSender<Vec<u8>>>,
    updates: Vec<Vec<u8>>,
    tokens: Vec<String>,
}

pub struct TestServer {
    pub addr: SocketAddr,
    room: Arc<Mutex<Room>>,
}

impl TestServer {
    pub async fn start(protocol: Protocol) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let room = Arc::new(Mutex::new(Room::default()));
        let r = room.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, protocol, r.clone()));
            }
        });
        TestServer { addr, room }
    }

    /// Tokens received in Hocuspocus auth messages.
    pub fn tokens(&self) -> Vec<String> {
        self.room.lock().unwrap().tokens.clone()
    }
}

fn hp_prefixed(doc: &str, body: &[u64]) -> Vec<u8> {
    let mut buf = Vec::new();
    write_string(&mut buf, doc);
    for &b in body {
        write_var(&mut buf, b);
    }
    buf
}

async fn serve(tcp: tokio::net::TcpStream, protocol: Protocol, room: Arc<Mutex<Room>>) {
    let Ok(ws) = accept_async(tcp).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
        }
    });
    room.lock().unwrap().clients.push(tx.clone());
    let mut framing = Framing::new(protocol, "");
    if protocol == Protocol::YWebsocket {
        let _ = tx.send(framing.sync_step_1(&[0]));
    }
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Binary(data) = msg else { continue };
        if protocol == Protocol::Hocuspocus {
            let mut r = crate::wire::Reader::new(&data);
            framing.doc = r.read_string().unwrap().to_owned();
        }
        for m in framing.decode(&data).unwrap() {
            match m {
                // Client -> server auth: [doc][2][0][token][version].
                Inbound::TokenRequest => {
                    let mut r = crate::wire::Reader::new(&data);
                    r.read_string().unwrap();
                    r.read_var().unwrap();
                    r.read_var().unwrap();
                    let token = r.read_string().unwrap().to_owned();
                    room.lock().unwrap().tokens.push(token);
                    let mut ok = hp_prefixed(&framing.doc, &[MSG_AUTH, HP_AUTH_AUTHENTICATED]);
                    write_string(&mut ok, "read-write");
                    let _ = tx.send(ok);
                }
                Inbound::SyncStep1(_) => {
                    let all = {
                        let r = room.lock().unwrap();
                        yrs::merge_updates_v1(r.updates.iter().map(Vec::as_slice)).unwrap()
                    };
                    if protocol == Protocol::Hocuspocus {
                        let _ = tx.send(framing.sync_step_1(&[0]));
                    }
                    let _ = tx.send(framing.sync_step_2(&all));
                }
                Inbound::SyncStep2(u) | Inbound::Update(u) => {
                    let mut r = room.lock().unwrap();
                    r.updates.push(u.to_vec());
                    let frame = framing.update(u);
                    for c in &r.clients {
                        let _ = c.send(frame.clone());
                    }
                    if protocol == Protocol::Hocuspocus {
                        let _ = tx.send(hp_prefixed(&framing.doc, &[HP_SYNC_STATUS, 1]));
                    }
                }
                _ => {}
            }
        }
    }
}
