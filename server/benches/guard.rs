//! What the section guard costs per update, next to applying the update.
//!
//!     cargo bench -p protokoll-server --bench guard
//!
//! For each workload, every update is (1) checked by the guard as the
//! server does it (decode the blocks, look up every block and deleted
//! range, record the accepted ones) and (2)
//! applied as the server does it (decode with yrs, integrate, encode what
//! was integrated for the log and the broadcast). Prints the
//! time per update of each and the throughput with the guard on and off.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use protokoll::{
    access::Principal,
    guard::{self, Ownership, SectionIndex},
    people::{AgencyId, Role, SectionOwner, UserId},
};
use yrs::{Doc, Text, Transact, Update, updates::decoder::Decode};

const SECTIONS: [&str; 6] = [
    "polis",
    "brand",
    "skola",
    "social",
    "aldreomsorg",
    "forskola",
];

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

fn typing(n: usize) -> Workload {
    let mut setup = Vec::new();
    for (i, section) in SECTIONS.iter().enumerate() {
        let doc = utf16_doc(1000 + i as u64);
        let text = doc.get_or_insert_text(format!("section:{section}").as_str());
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, &"Rapport från förvaltningen. ".repeat(100));
        setup.push(txn.encode_update_v1());
    }
    let police = utf16_doc(7);
    for u in &setup {
        police
            .transact_mut()
            .apply_update(Update::decode_v1(u).unwrap())
            .unwrap();
    }
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
    let police = utf16_doc(8);
    for u in &w.setup {
        police
            .transact_mut()
            .apply_update(Update::decode_v1(u).unwrap())
            .unwrap();
    }
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

fn run(w: &Workload) {
    let polis = AgencyId::new();
    let ownership = Ownership {
        sections: SECTIONS
            .iter()
            .map(|s| {
                let owner = if *s == "polis" {
                    SectionOwner::Agency { agency_id: polis }
                } else {
                    SectionOwner::Agency {
                        agency_id: AgencyId::new(),
                    }
                };
                (Arc::from(*s), owner)
            })
            .collect(),
    };
    let who = Principal {
        user_id: UserId::new(),
        name: "Polis".into(),
        agency: Some("Polis".into()),
        agency_id: Some(polis),
        is_admin: false,
        role: Some(Role::Member),
    };
    let doc = utf16_doc(1);
    let mut index = SectionIndex::default();
    for u in &w.setup {
        index.learn(&guard::decode(u).unwrap());
        doc.transact_mut()
            .apply_update(Update::decode_v1(u).unwrap())
            .unwrap();
    }
    let mut decode_time = Duration::ZERO;
    let mut guard_time = Duration::ZERO;
    let mut apply_time = Duration::ZERO;
    for u in &w.updates {
        let t = Instant::now();
        let decoded = guard::decode(u).unwrap();
        decode_time += t.elapsed();
        let accepted = index
            .check(&who, &ownership, &decoded, |_| None)
            .unwrap_or_else(|e| panic!("{e}: {decoded:?}"));
        index.record(&accepted);
        index.record_deletes(decoded.deletes.iter().copied());
        guard_time += t.elapsed();

        // As the room applies an update: integrate it and encode what was
        // integrated (stored and broadcast instead of the client's bytes).
        let t = Instant::now();
        let update = Update::decode_v1(u).unwrap();
        let mut txn = doc.transact_mut();
        txn.apply_update(update).unwrap();
        let canonical = txn.encode_update_v1();
        drop(txn);
        std::hint::black_box(canonical);
        apply_time += t.elapsed();
    }
    let n = w.updates.len() as f64;
    let per = |d: Duration| d.as_secs_f64() * 1e9 / n;
    let rate = |d: Duration| n / d.as_secs_f64();
    println!("{}: {} updates", w.name, w.updates.len());
    println!(
        "  guard   {:>10.0} ns/update ({:.0} of them decoding)",
        per(guard_time),
        per(decode_time)
    );
    println!("  apply   {:>10.0} ns/update", per(apply_time));
    println!(
        "  guard / apply = {:.1} %",
        100.0 * guard_time.as_secs_f64() / apply_time.as_secs_f64()
    );
    println!(
        "  throughput: guard off {:>10.0} updates/s, guard on {:>10.0} updates/s",
        rate(apply_time),
        rate(apply_time + guard_time)
    );
}

fn main() {
    run(&typing(20_000));
    run(&paste(200, 20_000));
}
