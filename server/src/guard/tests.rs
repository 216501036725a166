//! The guard's unit tests: the range structures, the check's verdicts, the
//! keystroke shortcut against the whole check, and the order the index
//! shows against the document's.

use std::sync::Arc;

use super::{ranges::Deleted, *};
use crate::{
    access::Principal,
    people::{AgencyId, Role, SectionOwner, UserId},
};
use yrs::{Doc, ReadTxn, Text, Transact, WriteTxn, XmlElementPrelim, XmlFragment, XmlTextPrelim};

#[test]
fn deleted_ranges_merge_like_a_set_of_clocks() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut deleted = Deleted::default();
    let mut model = vec![false; 300];
    for _ in 0..2_000 {
        let start = rng.random_range(0..290u32);
        let end = start + rng.random_range(1..10u32);
        deleted.add(start, end);
        for c in start..end {
            model[c as usize] = true;
        }
        // Stored ranges stay disjoint, not touching, and exactly the model.
        let ranges: Vec<(u32, u32)> = deleted.by_start.iter().map(|(s, e)| (*s, *e)).collect();
        assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0), "{ranges:?}");
        let mut covered = vec![false; 300];
        for (s, e) in &ranges {
            for c in *s..*e {
                covered[c as usize] = true;
            }
        }
        assert_eq!(covered, model);
    }
    let missing = deleted.missing(0, 300);
    for (s, e) in missing {
        assert!((s..e).all(|c| !model[c as usize]));
    }
}

fn principal(agency: Option<AgencyId>, role: Option<Role>) -> Principal {
    Principal {
        user_id: UserId::new(),
        name: "x".into(),
        agency: None,
        agency_id: agency,
        is_admin: false,
        role,
    }
}

fn ownership(polis: AgencyId, skola: AgencyId) -> Ownership {
    Ownership {
        sections: [
            (
                Arc::from("polis"),
                SectionOwner::Agency { agency_id: polis },
            ),
            (
                Arc::from("skola"),
                SectionOwner::Agency { agency_id: skola },
            ),
        ]
        .into_iter()
        .collect(),
    }
}

/// Two agencies, the police and the school, each owning its section.
fn council() -> (AgencyId, AgencyId, Ownership) {
    let (polis, skola) = (AgencyId::new(), AgencyId::new());
    (polis, skola, ownership(polis, skola))
}

/// The guard's verdict on `who` sending `update`, under client ids nobody
/// in the room holds yet.
fn verdict(
    index: &SectionIndex,
    who: &Principal,
    own: &Ownership,
    update: &[u8],
) -> Result<Accepted, Refusal> {
    index.check(who, own, &decode(update).unwrap(), |_| None)
}

/// Applies `update` to the server doc and index as an accepted update.
fn accept(doc: &Doc, index: &mut SectionIndex, update: &[u8]) {
    let decoded = decode(update).unwrap();
    index.learn(&decoded);
    doc.transact_mut()
        .apply_update(yrs::Update::decode_v1(update).unwrap())
        .unwrap();
}

fn paragraph(doc: &Doc, root: &str, text: &str) -> Vec<u8> {
    let mut txn = doc.transact_mut();
    let f = txn.get_or_insert_xml_fragment(root);
    let p = f.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
    p.push_back(&mut txn, XmlTextPrelim::new(text));
    txn.encode_update_v1()
}

use yrs::updates::decoder::Decode;

/// Three clients type into one text at random spots, each seeing the
/// others' edits late. Every order the index shows holds in the
/// document, and the index shows it for nearly every pair of adjacent
/// characters, the neighbours an honest client inserts between.
#[test]
fn the_order_the_index_shows_is_the_documents() {
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;
    use yrs::{Assoc, ID, StickyIndex};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let writers: Vec<Doc> = (1..=3u64).map(Doc::with_client_id).collect();
    let server = Doc::new();
    let mut index = SectionIndex::default();
    // Updates each writer has not seen yet.
    let mut inbox: Vec<Vec<Vec<u8>>> = vec![Vec::new(); writers.len()];
    let (mut asked, mut shown) = (0, 0);
    for _ in 0..500 {
        let k = rng.random_range(0..writers.len());
        for u in inbox[k].drain(..) {
            writers[k]
                .transact_mut()
                .apply_update(yrs::Update::decode_v1(&u).unwrap())
                .unwrap();
        }
        let text = writers[k].get_or_insert_text("section:polis");
        let update = {
            let mut txn = writers[k].transact_mut();
            let at = rng.random_range(0..=text.len(&txn));
            let typed = if rng.random_bool(0.2) { "abc" } else { "x" };
            text.insert(&mut txn, at, typed);
            txn.encode_update_v1()
        };
        // The neighbours the writer inserted between, as a client's
        // update is checked: before it is applied.
        let decoded = decode(&update).unwrap();
        for b in &decoded.blocks {
            if let Kind::Item {
                left: Some(l),
                right: Some(r),
                ..
            } = b.kind
            {
                asked += 1;
                if index.shows_order(l, r, &decoded) {
                    shown += 1;
                }
            }
        }
        accept(&server, &mut index, &update);
        for (j, queue) in inbox.iter_mut().enumerate() {
            if j != k {
                queue.push(update.clone());
            }
        }
    }
    // Every character's position (nothing is deleted).
    let txn = server.transact();
    let mut at: HashMap<Id, u32> = HashMap::default();
    for (client, clock) in txn.state_vector().iter() {
        for c in 0..*clock {
            let offset = StickyIndex::from_id(ID::new(*client, c), Assoc::After)
                .get_offset(&txn)
                .unwrap();
            at.insert((client.get(), c), offset.index);
        }
    }
    let mut by_position: Vec<(u32, Id)> = at.iter().map(|(id, p)| (*p, *id)).collect();
    by_position.sort();
    assert_eq!(by_position.len(), at.len());
    let ids: Vec<Id> = by_position.iter().map(|(_, id)| *id).collect();
    let none = Decoded::default();
    let mut adjacent_shown = 0;
    for pair in ids.windows(2) {
        if index.shows_order(pair[0], pair[1], &none) {
            adjacent_shown += 1;
        }
        assert!(!index.shows_order(pair[1], pair[0], &none), "{pair:?}");
    }
    for _ in 0..20_000 {
        let (a, b) = (
            ids[rng.random_range(0..ids.len())],
            ids[rng.random_range(0..ids.len())],
        );
        if index.shows_order(a, b, &none) {
            assert!(at[&a] < at[&b], "{a:?} shown before {b:?}");
        }
    }
    assert!(adjacent_shown > 0);
    assert!(asked > 300, "{asked}");
    assert!(
        shown * 100 >= asked * 95,
        "the index shows the order of the neighbours of {shown} of {asked} insertions"
    );
}

/// A keystroke takes the shortcut, which debug builds compare with the
/// whole check on every update the tests make; what it does not cover
/// (another's section, another's client id) goes the whole way.
#[test]
fn a_keystroke_takes_the_shortcut_and_anything_else_the_whole_check() {
    use yrs::XmlOut;
    let (polis, _, own) = council();
    let police = principal(Some(polis), Some(Role::Member));
    let holder = police.user_id;
    let mut index = SectionIndex::default();
    let server = Doc::new();
    let client = Doc::with_client_id(1);
    accept(
        &server,
        &mut index,
        &paragraph(&client, "section:polis", "hej"),
    );
    let school = paragraph(&Doc::with_client_id(2), "section:skola", "hej");
    accept(&server, &mut index, &school);
    client
        .transact_mut()
        .apply_update(yrs::Update::decode_v1(&school).unwrap())
        .unwrap();
    // Types "!" at the end of the first paragraph of `root`.
    let keystroke = |root: &str| {
        let f = client.get_or_insert_xml_fragment(root);
        let mut txn = client.transact_mut();
        let Some(XmlOut::Element(p)) = f.get(&txn, 0) else {
            panic!("a paragraph")
        };
        let Some(XmlOut::Text(t)) = p.get(&txn, 0) else {
            panic!("its text")
        };
        let len = t.len(&txn);
        t.insert(&mut txn, len, "!");
        txn.encode_update_v1()
    };
    let update = keystroke("section:polis");
    let typed = decode(&update).unwrap();
    let accepted = index
        .typed(&police, &own, &typed, |_| Some(holder))
        .expect("a keystroke in one's own section takes the shortcut");
    assert_eq!(
        Ok(&accepted),
        index
            .check_fully(&police, &own, &typed, |_| Some(holder))
            .as_ref()
    );
    assert_eq!(accepted.regions(&index), [&Region::Section("polis".into())]);
    // What the shortcut leaves to the whole check.
    let the_long_way = |index: &SectionIndex, update: &Decoded, holder: UserId| {
        assert!(
            index
                .typed(&police, &own, update, |_| Some(holder))
                .is_none()
        );
        index.check(&police, &own, update, |_| Some(holder))
    };
    // Held by someone else.
    assert_eq!(
        the_long_way(&index, &typed, UserId::new()),
        Err(Refusal::ForeignClient)
    );
    accept(&server, &mut index, &update);
    // Typing on in the school's paragraph.
    let elsewhere = decode(&keystroke("section:skola")).unwrap();
    assert_eq!(
        the_long_way(&index, &elsewhere, holder),
        Err(Refusal::Forbidden(Region::Section("skola".into())))
    );
}

#[test]
fn writing_in_ones_own_section_is_allowed_and_elsewhere_refused() {
    let (polis, _, own) = council();
    let index = SectionIndex::default();
    let police = principal(Some(polis), Some(Role::Member));
    let client = Doc::with_client_id(1);
    let update = paragraph(&client, "section:polis", "hej");
    let ok = verdict(&index, &police, &own, &update).unwrap();
    assert_eq!(ok.regions(&index), [&Region::Section("polis".into())]);
    let update = paragraph(&Doc::with_client_id(2), "section:skola", "hej");
    assert_eq!(
        verdict(&index, &police, &own, &update).unwrap_err(),
        Refusal::Forbidden(Region::Section("skola".into()))
    );
    let update = paragraph(&Doc::with_client_id(3), "agenda", "x");
    assert!(verdict(&index, &police, &own, &update).is_err());
    let justerare = principal(Some(polis), Some(Role::Justerare));
    let update = paragraph(&Doc::with_client_id(4), "section:polis", "x");
    assert!(verdict(&index, &justerare, &own, &update).is_err());
}

#[test]
fn inserts_by_origin_and_deletes_resolve_to_the_items_section() {
    let (polis, skola, own) = council();
    let server = Doc::with_client_id(100);
    let mut index = SectionIndex::default();
    let school = Doc::with_client_id(7);
    let first = {
        let text = school.get_or_insert_text("section:skola");
        let mut txn = school.transact_mut();
        text.insert(&mut txn, 0, "skolans text");
        txn.encode_update_v1()
    };
    accept(&server, &mut index, &first);

    // The police, synced, insert in the middle of the school's text
    // (placed by left/right origin, no parent in the update) and delete.
    let police_doc = Doc::with_client_id(8);
    police_doc
        .transact_mut()
        .apply_update(yrs::Update::decode_v1(&first).unwrap())
        .unwrap();
    let text = police_doc.get_or_insert_text("section:skola");
    let insert = {
        let mut txn = police_doc.transact_mut();
        text.insert(&mut txn, 3, "POLIS");
        txn.encode_update_v1()
    };
    let delete = {
        let mut txn = police_doc.transact_mut();
        text.remove_range(&mut txn, 0, 2);
        txn.encode_update_v1()
    };
    let police = principal(Some(polis), Some(Role::Member));
    for update in [&insert, &delete] {
        assert_eq!(
            verdict(&index, &police, &own, update).unwrap_err(),
            Refusal::Forbidden(Region::Section("skola".into()))
        );
    }
    let school_member = principal(Some(skola), Some(Role::Member));
    assert!(verdict(&index, &school_member, &own, &delete).is_ok());
}

#[test]
fn references_to_unknown_items_are_refused() {
    let (polis, _, own) = council();
    let a = Doc::with_client_id(1);
    let first = paragraph(&a, "section:polis", "a");
    let second = paragraph(&a, "section:polis", "b");
    let police = principal(Some(polis), Some(Role::Member));
    // The server never saw `first`, which `second` builds on.
    let index = SectionIndex::default();
    // Ahead of the client's clock: a gap, before anything is looked up.
    assert_eq!(
        verdict(&index, &police, &own, &second).unwrap_err(),
        Refusal::Gap
    );
    let _ = first;
}

#[test]
fn tombstones_under_a_fresh_client_id_are_refused() {
    // A GC block for client 42, clocks 0..1000: no parent, no content.
    let mut encoder = yrs::updates::encoder::EncoderV1::new();
    {
        use yrs::{encoding::write::Write, updates::encoder::Encoder};
        encoder.write_var(1u32); // one client
        encoder.write_var(1u32); // one block
        encoder.write_client(yrs::ClientID::new(42));
        encoder.write_var(0u32); // starting clock
        encoder.write_info(0); // GC
        encoder.write_len(1000);
        encoder.write_var(0u32); // empty delete set
    }
    let update = yrs::updates::encoder::Encoder::to_vec(encoder);
    let (polis, _, own) = council();
    let police = principal(Some(polis), Some(Role::Member));
    let index = SectionIndex::default();
    assert_eq!(
        verdict(&index, &police, &own, &update).unwrap_err(),
        Refusal::ForeignClient
    );
}

#[test]
fn already_deleted_ranges_are_no_ops() {
    let (polis, _, own) = council();
    let server = Doc::with_client_id(100);
    let mut index = SectionIndex::default();
    let school = Doc::with_client_id(7);
    let text = school.get_or_insert_text("section:skola");
    let ins = {
        let mut txn = school.transact_mut();
        text.insert(&mut txn, 0, "abc");
        txn.encode_update_v1()
    };
    accept(&server, &mut index, &ins);
    let del = {
        let mut txn = school.transact_mut();
        text.remove_range(&mut txn, 0, 1);
        txn.encode_update_v1()
    };
    accept(&server, &mut index, &del);
    // The police's full delete set contains the school's deletion.
    let police = principal(Some(polis), Some(Role::Member));
    let known = server.transact().state_vector();
    let state = school.transact().encode_state_as_update_v1(&known);
    assert!(verdict(&index, &police, &own, &state).is_ok());
}
