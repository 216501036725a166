//! What the section guard costs per update, next to applying the update,
//! measured on the path the server takes (`sync::GuardedDoc`).
//!
//!     cargo bench -p protokoll-server --bench guard
//!
//! For each workload the same updates are applied to a fresh document
//! twice: with the guard (the guard's decoding of the structure, yrs'
//! decoding, the guard's check and neighbour-order check, integrating,
//! encoding what was integrated, recording it in the guard's index) and
//! without (yrs' decoding, integrating, encoding). The guard's cost is the
//! difference. Whole loops are timed, not single updates, so that reading
//! the clock costs nothing. The two documents take the updates in turn,
//! forty chunks each, so that a shared host's drifting speed falls on both
//! alike; a round's share is (on - off) / off, and the median of 15 rounds
//! is printed, with the lowest and highest.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use protokoll::{
    access::Principal,
    guard::{self, Ownership},
    people::{AgencyId, Role, SectionOwner, UserId},
    sync::GuardedDoc,
};
use yrs::{
    Doc, Text, Transact, Update, WriteTxn, XmlElementPrelim, XmlFragment, XmlTextPrelim,
    updates::decoder::Decode,
};

const SECTIONS: [&str; 6] = [
    "polis",
    "brand",
    "skola",
    "social",
    "aldreomsorg",
    "forskola",
];

const ROUNDS: usize = 15;

struct Workload {
    name: &'static str,
    /// Updates that build the document before measuring.
    setup: Vec<Vec<u8>>,
    /// The measured updates, all by the police in their own section.
    updates: Vec<Vec<u8>>,
}

/// Positions in UTF-16 units, as Yjs in the browsers counts them.
fn utf16_doc(client: u64) -> Doc {
    Doc::with_options(yrs::Options {
        client_id: yrs::ClientID::new(client),
        offset_kind: yrs::OffsetKind::Utf16,
        ..yrs::Options::default()
    })
}

/// A client's document (`utf16_doc`) that has applied `updates`.
fn synced(client: u64, updates: &[Vec<u8>]) -> Doc {
    let doc = utf16_doc(client);
    for u in updates {
        doc.transact_mut()
            .apply_update(Update::decode_v1(u).unwrap())
            .unwrap();
    }
    doc
}

fn typing(n: usize) -> Workload {
    let mut setup = Vec::new();
    for (i, section) in SECTIONS.iter().enumerate() {
        let doc = utf16_doc(1000 + i as u64);
        let text = doc.get_or_insert_text(format!("section:{section}").as_str());
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, &"Rapport från förvaltningen. ".repeat(100));
        setup.push(txn.encode_update_v1());
    }
    let police = synced(7, &setup);
    let text = police.get_or_insert_text("section:polis");
    let updates = (0..n)
        .map(|i| {
            let mut txn = police.transact_mut();
            let len = text.len(&txn);
            // Mostly appending, now and then in the middle, as people type.
            let at = if i % 10 == 0 { len / 2 } else { len };
            text.insert(&mut txn, at, "a");
            txn.encode_update_v1()
        })
        .collect();
    Workload {
        name: "typing (1 character per update)",
        setup,
        updates,
    }
}

fn paste(n: usize, bytes: usize) -> Workload {
    let mut w = typing(0);
    let police = synced(8, &w.setup);
    let text = police.get_or_insert_text("section:polis");
    let chunk = "Inbrott ökar i hela staden. ".repeat(bytes / 28);
    w.updates = (0..n)
        .map(|_| {
            let mut txn = police.transact_mut();
            let len = text.len(&txn);
            text.insert(&mut txn, len / 2, &chunk);
            txn.encode_update_v1()
        })
        .collect();
    w.name = "paste (about 20 KB per update)";
    w
}

/// Typing into paragraphs as the browser app's editor writes them: each
/// section a fragment of paragraphs, each paragraph an element holding a
/// text.
fn typing_in_paragraphs(n: usize) -> Workload {
    let mut setup = Vec::new();
    for (i, section) in SECTIONS.iter().enumerate() {
        let doc = utf16_doc(2000 + i as u64);
        let mut txn = doc.transact_mut();
        let fragment = txn.get_or_insert_xml_fragment(format!("section:{section}").as_str());
        for _ in 0..20 {
            let p = fragment.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
            p.push_back(
                &mut txn,
                XmlTextPrelim::new("Rapport från förvaltningen. ".repeat(5)),
            );
        }
        setup.push(txn.encode_update_v1());
    }
    let police = synced(9, &setup);
    let fragment = police.get_or_insert_xml_fragment("section:polis");
    let mut updates = Vec::with_capacity(n);
    let mut paragraph = None;
    for i in 0..n {
        let mut txn = police.transact_mut();
        // A new paragraph now and then (Enter), typing at its end, and now
        // and then in the middle of it.
        if i % 200 == 0 {
            let len = fragment.len(&txn);
            let p = fragment.insert(&mut txn, len, XmlElementPrelim::empty("paragraph"));
            paragraph = Some(p.insert(&mut txn, 0, XmlTextPrelim::new("")));
        }
        let text = paragraph.as_ref().expect("created at i = 0");
        let len = text.len(&txn);
        let at = if i % 10 == 5 { len / 2 } else { len };
        text.insert(&mut txn, at, "a");
        updates.push(txn.encode_update_v1());
    }
    Workload {
        name: "typing in paragraphs (as the editor writes)",
        setup,
        updates,
    }
}

fn ownership(polis: AgencyId) -> Ownership {
    Ownership {
        sections: SECTIONS
            .iter()
            .map(|s| {
                let agency_id = if *s == "polis" {
                    polis
                } else {
                    AgencyId::new()
                };
                (Arc::from(*s), SectionOwner::Agency { agency_id })
            })
            .collect(),
    }
}

/// Applies `updates` to `doc`, the guard on or off, as the room does: the
/// structure (guard on) and yrs' update are decoded from the frame, then
/// the room checks and applies. Returns the time it took.
fn apply(
    doc: &mut GuardedDoc,
    updates: &[Vec<u8>],
    who: &Principal,
    ownership: &Ownership,
    guard_on: bool,
) -> Duration {
    let nobody = guard::Decoded::default();
    let user = who.user_id;
    let started = Instant::now();
    for u in updates {
        let structure = if guard_on {
            guard::decode(u).expect("decodes")
        } else {
            guard::Decoded::default()
        };
        let update = Update::decode_v1(u).expect("decodes");
        let applied = doc
            .apply_client(
                who,
                ownership,
                |_| Some(user),
                update,
                if guard_on { &structure } else { &nobody },
                guard_on,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        std::hint::black_box(applied);
    }
    started.elapsed()
}

/// Updates applied in one go before switching to the other document.
const CHUNKS: usize = 40;

/// One round: every update of `w` applied to two fresh documents, one with
/// the guard and one without, a chunk at a time to each in turn (which
/// goes first alternates), so that the machine's speed, which drifts on a
/// shared host, is the same for both. Returns the time the updates took
/// with the guard and without (the setup excluded).
fn round(w: &Workload, who: &Principal, ownership: &Ownership) -> (Duration, Duration) {
    let fresh = || {
        let mut doc = GuardedDoc::default();
        for u in &w.setup {
            assert!(doc.apply_trusted(u));
        }
        doc
    };
    let (mut with, mut without) = (fresh(), fresh());
    let (mut on, mut off) = (Duration::ZERO, Duration::ZERO);
    let chunk = w.updates.len().div_ceil(CHUNKS);
    for (i, updates) in w.updates.chunks(chunk).enumerate() {
        if i % 2 == 0 {
            off += apply(&mut without, updates, who, ownership, false);
            on += apply(&mut with, updates, who, ownership, true);
        } else {
            on += apply(&mut with, updates, who, ownership, true);
            off += apply(&mut without, updates, who, ownership, false);
        }
    }
    (on, off)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn run(w: &Workload) {
    let polis = AgencyId::new();
    let ownership = ownership(polis);
    let who = Principal {
        user_id: UserId::new(),
        name: "Polis".into(),
        agency: Some("Polis".into()),
        agency_id: Some(polis),
        is_admin: false,
        role: Some(Role::Member),
    };
    let (on, off): (Vec<Duration>, Vec<Duration>) =
        (0..ROUNDS).map(|_| round(w, &who, &ownership)).unzip();
    // The guard's decoding alone, for the breakdown (the fastest of five).
    let decode = (0..5)
        .map(|_| {
            let started = Instant::now();
            for u in &w.updates {
                std::hint::black_box(guard::decode(u).expect("decodes"));
            }
            started.elapsed()
        })
        .min()
        .expect("five runs");
    let mut shares: Vec<f64> = on
        .iter()
        .zip(&off)
        .map(|(on, off)| (on.as_secs_f64() - off.as_secs_f64()) / off.as_secs_f64())
        .collect();
    shares.sort_by(f64::total_cmp);
    let share = shares[shares.len() / 2];
    let (on, off) = (median(on), median(off));
    let n = w.updates.len() as f64;
    let per = |d: Duration| d.as_secs_f64() * 1e9 / n;
    println!(
        "{}: {} updates, {ROUNDS} rounds (medians)",
        w.name,
        w.updates.len()
    );
    println!("  apply, guard off {:>9.0} ns/update", per(off));
    println!("  apply, guard on  {:>9.0} ns/update", per(on));
    println!(
        "  guard            {:>9.0} ns/update ({:.0} of them decoding)",
        per(on.saturating_sub(off)),
        per(decode)
    );
    println!(
        "  guard / apply = {:.1} % (target: under 20 %; rounds {:.1} to {:.1} %)",
        100.0 * share,
        100.0 * shares[0],
        100.0 * shares[shares.len() - 1]
    );
    println!(
        "  throughput: guard off {:>9.0} updates/s, guard on {:>9.0} updates/s",
        n / off.as_secs_f64(),
        n / on.as_secs_f64()
    );
}

fn main() {
    run(&typing(20_000));
    run(&typing_in_paragraphs(20_000));
    run(&paste(200, 20_000));
}
