//! The section guard over real sockets: hand-crafted attacks from a signed-in
//! agency user, each refused as a whole while the target section stays
//! byte-identical for a viewer connected throughout and after a restart.

use protokoll::{
    people::{Role, Section, SectionId, SectionOwner},
    sync::protocol,
};
use rand::{Rng, SeedableRng};
use yrs::{
    Doc, GetString, Map, ReadTxn, Text, Transact, TransactionMut, WriteTxn, Xml, XmlElementPrelim,
    XmlFragment, XmlOut, XmlTextPrelim, types::Attrs, updates::decoder::Decode,
};

use crate::{fixture::*, helpers::*};

/// Two agencies with a section each, a secretary ("sekreterare") who
/// watches.
const PLAN: Plan = Plan {
    title: "Guarded",
    writable: false,
    agencies: &["Polis", "Skola"],
    sections: AGENCY_SECTIONS,
    people: &[
        POLIS,
        SKOLA,
        Person::new("sekreterare", Some(Role::Secretary)),
    ],
};

async fn council(backend: Backend) -> Council {
    Council::start(backend, test_config(), &PLAN).await
}

/// What the school writes first: a paragraph of text, an empty paragraph
/// (a nested element with no children) and a map-like attribute.
fn school_content(txn: &mut TransactionMut) {
    let f = txn.get_or_insert_xml_fragment("section:skola");
    let p = f.push_back(txn, XmlElementPrelim::empty("paragraph"));
    p.push_back(txn, XmlTextPrelim::new("skolans text"));
    let empty = f.push_back(txn, XmlElementPrelim::empty("paragraph"));
    empty.insert_attribute(txn, "align", "left");
}

fn edit(doc: &Doc, f: impl FnOnce(&mut TransactionMut)) -> Vec<u8> {
    let mut txn = doc.transact_mut();
    f(&mut txn);
    txn.encode_update_v1()
}

fn skola_text(txn: &mut TransactionMut) -> yrs::XmlTextRef {
    let f = txn.get_or_insert_xml_fragment("section:skola");
    let Some(XmlOut::Element(p)) = f.get(txn, 0) else {
        panic!("school paragraph")
    };
    let Some(XmlOut::Text(t)) = p.get(txn, 0) else {
        panic!("school text")
    };
    t
}

fn skola_empty_paragraph(txn: &mut TransactionMut) -> yrs::XmlElementRef {
    let f = txn.get_or_insert_xml_fragment("section:skola");
    let Some(XmlOut::Element(p)) = f.get(txn, 1) else {
        panic!("empty paragraph")
    };
    p
}

#[derive(Clone, Copy)]
enum Attack {
    ByRootName,
    ByLeftOrigin,
    ByRightOrigin,
    ByParentId,
    Attribute,
    Format,
    Delete,
    Mixed,
    UnknownItems,
    NewRootType,
    /// Finding 1: a block ahead of its client's clock under a fresh id,
    /// then the blocks that fill the hole, one of them in Skola's section.
    ClockGap,
    /// Finding 1 with an explicit Skip struct in place of the hole.
    SkipStruct,
    /// Finding 2: left origin on a collected item of the sender's own
    /// (inside a paragraph it deleted), right origin in Skola's text.
    CollectedLeftOrigin,
    /// Finding 3: JSON content, which yrs 0.28 reads as one more string
    /// than Yjs: the guard and yrs see JSON in the police's section and a
    /// collected range, Yjs sees text in Skola's section.
    JsonDifferential,
    /// Bit 4 of the content kind: yrs reads a string, Yjs an unknown kind.
    OddContentKind,
    /// A second run of blocks for a client that already had one: yrs
    /// appends it, Yjs replaces the first.
    RepeatedClient,
    /// An element the editor's schema does not have, in the sender's own
    /// section: every viewer's editor would delete it again, in a section
    /// the viewer may not write.
    UnknownElement,
}

/// The id of the first character of the school's text.
fn skola_first_char(doc: &Doc) -> (u64, u32) {
    let mut txn = doc.transact_mut();
    let text = skola_text(&mut txn);
    let branch: &yrs::branch::Branch = text.as_ref();
    let yrs::branch::BranchID::Nested(id) = branch.id() else {
        panic!("a nested text")
    };
    // `school_content` writes the text item and its characters in one
    // transaction: the characters follow the text's id.
    (id.client.get(), id.clock + 1)
}

fn next_clock(doc: &Doc) -> u32 {
    doc.transact().state_vector().get(&doc.client_id())
}

/// Updates to send before the attack, which must be accepted, and the
/// attack itself (one or more updates sent back to back).
fn crafted(attack: Attack, doc: &Doc) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    use crate::craft::{self, Block, Content, Run};
    let me = doc.client_id().get();
    let fresh: u64 = rand::rng().random_range(1_000_000..2_000_000);
    let text = |s: &str| Content::String(s.into());
    match attack {
        Attack::ClockGap => {
            let ahead = Run {
                client: fresh,
                clock: 3,
                blocks: vec![Block::in_root("section:polis", text("x"))],
            };
            let fill = Run {
                client: fresh,
                clock: 0,
                blocks: vec![
                    Block::in_root("section:skola", Content::Type(3, Some("paragraph".into()))),
                    Block::in_item((fresh, 0), Content::Type(6, None)),
                    Block::in_item((fresh, 1), text("I")),
                ],
            };
            (
                vec![],
                vec![
                    craft::encode(&[ahead], &[], &[]),
                    craft::encode(&[fill], &[], &[]),
                ],
            )
        }
        Attack::SkipStruct => {
            let run = Run {
                client: fresh,
                clock: 0,
                blocks: vec![Block::Skip(3), Block::in_root("section:polis", text("x"))],
            };
            let fill = Run {
                client: fresh,
                clock: 0,
                blocks: vec![
                    Block::in_root("section:skola", Content::Type(3, Some("paragraph".into()))),
                    Block::in_item((fresh, 0), Content::Type(6, None)),
                    Block::in_item((fresh, 1), text("I")),
                ],
            };
            (
                vec![],
                vec![
                    craft::encode(&[run], &[], &[]),
                    craft::encode(&[fill], &[], &[]),
                ],
            )
        }
        Attack::CollectedLeftOrigin => {
            // The police write a paragraph of their own and delete it: the
            // text inside is collected.
            let write = edit(doc, |txn| {
                let own = txn.get_or_insert_xml_fragment("section:polis");
                let p = own.push_back(txn, XmlElementPrelim::empty("paragraph"));
                p.push_back(txn, XmlTextPrelim::new("tillfälligt"));
            });
            let inside = {
                let structure = protokoll::guard::decode(&write).unwrap();
                let b = structure.blocks.last().unwrap();
                (b.client, b.clock + 2)
            };
            let delete = edit(doc, |txn| {
                let own = txn.get_or_insert_xml_fragment("section:polis");
                own.remove_range(txn, 0, 1);
            });
            let attack = Run {
                client: me,
                clock: next_clock(doc),
                blocks: vec![Block::beside(
                    Some(inside),
                    Some(skola_first_char(doc)),
                    text("POLIS"),
                )],
            };
            (
                vec![write, delete],
                vec![craft::encode(&[attack], &[], &[])],
            )
        }
        Attack::JsonDifferential => {
            let (skola, clock) = skola_first_char(doc);
            assert!(
                skola < 128 && clock < 128,
                "one-byte ids keep it valid UTF-8"
            );
            // What Yjs reads as the next struct after the JSON value: a
            // string (info 0x44: right origin, string) of 65 characters
            // placed before the school's first character.
            let mut hidden = vec![skola as u8, clock as u8, 65];
            hidden.extend(std::iter::repeat_n(b'X', 65));
            let hidden = String::from_utf8(hidden).unwrap();
            assert_eq!(hidden.len(), 68, "its length byte is the info 0x44");
            let run = Run {
                client: fresh,
                clock: 0,
                blocks: vec![
                    Block::in_root("section:polis", Content::Json(vec!["1".into()])),
                    // yrs reads a second JSON string (`hidden`), then this
                    // collected range; Yjs reads the string above, and takes
                    // this range's info byte (0) as an empty delete set.
                    Block::Gc(5),
                ],
            };
            // Count one value, write two strings: what yrs reads.
            let mut update = craft::encode(&[run], &[], &[]);
            let json_at = update
                .windows(3)
                .position(|w| w == [1, 1, b'1'])
                .expect("the JSON count and value");
            let mut tail = update.split_off(json_at + 3);
            update.push(hidden.len() as u8);
            update.extend_from_slice(hidden.as_bytes());
            update.append(&mut tail);
            (vec![], vec![update])
        }
        Attack::OddContentKind => {
            let run = Run {
                client: me,
                clock: next_clock(doc),
                blocks: vec![Block::Item {
                    left: None,
                    right: None,
                    parent: Some(craft::Parent::Root("section:polis".into())),
                    key: None,
                    content: text("x"),
                    extra_info: 0x10,
                }],
            };
            (vec![], vec![craft::encode(&[run], &[], &[])])
        }
        Attack::RepeatedClient => {
            let clock = next_clock(doc);
            let first = Run {
                client: me,
                clock,
                blocks: vec![Block::in_root("section:polis", text("a"))],
            };
            let second = Run {
                client: me,
                clock: clock + 1,
                blocks: vec![Block::in_root("section:polis", text("b"))],
            };
            (vec![], vec![craft::encode(&[first, second], &[], &[])])
        }
        other => (vec![], vec![craft(other, doc)]),
    }
}

fn craft(attack: Attack, doc: &Doc) -> Vec<u8> {
    match attack {
        Attack::ByRootName => edit(doc, |txn| {
            let f = txn.get_or_insert_xml_fragment("section:skola");
            f.insert(txn, 0, XmlElementPrelim::empty("paragraph"));
        }),
        Attack::ByLeftOrigin => edit(doc, |txn| {
            let t = skola_text(txn);
            t.insert(txn, 3, "POLIS");
        }),
        Attack::ByRightOrigin => edit(doc, |txn| {
            let t = skola_text(txn);
            t.insert(txn, 0, "POLIS");
        }),
        Attack::ByParentId => edit(doc, |txn| {
            let p = skola_empty_paragraph(txn);
            p.push_back(txn, XmlTextPrelim::new("POLIS"));
        }),
        Attack::Attribute => edit(doc, |txn| {
            let p = skola_empty_paragraph(txn);
            p.insert_attribute(txn, "data-polis", "1");
        }),
        Attack::Format => edit(doc, |txn| {
            let t = skola_text(txn);
            t.format(txn, 0, 6, Attrs::from([("bold".into(), true.into())]));
        }),
        Attack::Delete => edit(doc, |txn| {
            let t = skola_text(txn);
            t.remove_range(txn, 0, 7);
        }),
        Attack::Mixed => edit(doc, |txn| {
            let own = txn.get_or_insert_xml_fragment("section:polis");
            let p = own.push_back(txn, XmlElementPrelim::empty("paragraph"));
            p.push_back(txn, XmlTextPrelim::new("polisens text"));
            let t = skola_text(txn);
            t.insert(txn, 0, "POLIS");
        }),
        Attack::UnknownItems => {
            // An edit the server never sees, then one that builds on it.
            let _unsent = edit(doc, |txn| {
                let own = txn.get_or_insert_xml_fragment("section:polis");
                let p = own.push_back(txn, XmlElementPrelim::empty("paragraph"));
                p.push_back(txn, XmlTextPrelim::new("osänt"));
            });
            edit(doc, |txn| {
                let own = txn.get_or_insert_xml_fragment("section:polis");
                let Some(XmlOut::Element(p)) = own.get(txn, 0) else {
                    panic!()
                };
                let Some(XmlOut::Text(t)) = p.get(txn, 0) else {
                    panic!()
                };
                t.insert(txn, 2, "X");
            })
        }
        Attack::NewRootType => edit(doc, |txn| {
            let m = txn.get_or_insert_map("protokoll-hack");
            m.insert(txn, "x", "y");
        }),
        Attack::UnknownElement => edit(doc, |txn| {
            let own = txn.get_or_insert_xml_fragment("section:polis");
            own.push_back(txn, XmlElementPrelim::empty("script"));
        }),
        _ => unreachable!("hand-encoded in `crafted`"),
    }
}

/// Runs one attack from the police's connection; the school's section (and
/// the police's) must come out untouched, live and after a restart.
async fn refused(backend: Backend, attack: Attack, step2: bool) {
    let c = council(backend).await;
    let addr = c.server.addr;
    let id = c.meeting.id;
    let mut skola = Client::connect(addr, id, &c.tokens["skola"]).await;
    // A one-byte client id, which the JSON differential needs.
    skola.doc = Doc::with_client_id(7);
    skola.until("synced", |s| s.synced).await;
    let setup = edit(&skola.doc, school_content);
    skola.send_raw(protocol::encode_update(&setup)).await;
    let mut viewer = Client::synced(addr, id, &c.tokens["sekreterare"]).await;
    viewer
        .until("the school's text", |v| {
            v.section("section:skola").contains("skolans text")
        })
        .await;
    let before = viewer.section("section:skola");
    let mut polis = Client::synced(addr, id, &c.tokens["polis"]).await;
    polis
        .until("the school's text", |p| {
            p.section("section:skola").contains("skolans text")
        })
        .await;

    let (prep, updates) = crafted(attack, &polis.doc);
    for update in prep {
        polis.send_raw(protocol::encode_update(&update)).await;
    }
    for update in updates {
        let frame = if step2 {
            protocol::encode_sync_step_2(&update)
        } else {
            protocol::encode_update(&update)
        };
        let _ = polis.try_send(frame).await;
    }
    let (code, reason) = polis.closed_by_server().await;
    assert_eq!(code, 4403, "{reason}");
    let denied = polis
        .permission_denied
        .clone()
        .expect("an auth permission-denied message");
    assert!(denied.starts_with("permission denied"), "{denied}");

    // Broadcasts are ordered: once the school's next edit has reached the
    // viewer, anything broadcast before it would have too.
    let marker = edit(&skola.doc, |txn| {
        let f = txn.get_or_insert_xml_fragment("section:skola");
        let p = f.push_back(txn, XmlElementPrelim::empty("paragraph"));
        p.push_back(txn, XmlTextPrelim::new("efter"));
    });
    skola.send_raw(protocol::encode_update(&marker)).await;
    viewer
        .until("the school's marker", |v| {
            v.section("section:skola").contains("efter")
        })
        .await;
    let expected = format!("{before}<paragraph>efter</paragraph>");
    assert_eq!(viewer.section("section:skola"), expected);
    assert_eq!(
        viewer.section("section:polis"),
        "",
        "nothing of the update was applied"
    );
    {
        let txn = viewer.doc.transact();
        assert!(txn.get_map("protokoll-hack").is_none(), "no new root type");
    }

    c.server.stop().await;
    let server = TestServer::start(c.db.as_ref().unwrap()).await;
    let after = Client::synced(server.addr, id, &c.tokens["sekreterare"]).await;
    assert_eq!(after.section("section:skola"), expected, "after a restart");
    assert_eq!(after.section("section:polis"), "");
    server.stop().await;
}

macro_rules! attacks {
    ($($name:ident => $attack:expr, $step2:expr;)*) => {
        $(async fn $name(backend: Backend) { refused(backend, $attack, $step2).await })*
        crate::on_both_backends!($($name),*);
    };
}

mod attack {
    use super::*;

    attacks! {
        insert_into_another_sections_fragment_by_root_name_is_refused => Attack::ByRootName, false;
        insert_by_left_origin_into_another_section_is_refused => Attack::ByLeftOrigin, false;
        insert_by_right_origin_into_another_section_is_refused => Attack::ByRightOrigin, false;
        insert_into_a_nested_element_by_parent_id_is_refused => Attack::ByParentId, false;
        setting_an_attribute_in_another_section_is_refused => Attack::Attribute, false;
        formatting_text_in_another_section_is_refused => Attack::Format, false;
        deleting_another_sections_text_is_refused => Attack::Delete, false;
        an_update_mixing_allowed_and_forbidden_changes_is_refused_whole => Attack::Mixed, false;
        an_update_referring_to_unknown_items_is_refused => Attack::UnknownItems, false;
        an_update_creating_a_new_root_type_is_refused => Attack::NewRootType, false;
        root_name_attack_inside_sync_step_2_is_refused => Attack::ByRootName, true;
        left_origin_attack_inside_sync_step_2_is_refused => Attack::ByLeftOrigin, true;
        parent_id_attack_inside_sync_step_2_is_refused => Attack::ByParentId, true;
        delete_attack_inside_sync_step_2_is_refused => Attack::Delete, true;
        mixed_attack_inside_sync_step_2_is_refused => Attack::Mixed, true;
        a_block_ahead_of_its_clients_clock_is_refused => Attack::ClockGap, false;
        a_clock_gap_inside_sync_step_2_is_refused => Attack::ClockGap, true;
        a_skip_struct_is_refused => Attack::SkipStruct, false;
        a_skip_struct_inside_sync_step_2_is_refused => Attack::SkipStruct, true;
        a_left_origin_on_collected_content_with_a_right_origin_elsewhere_is_refused => Attack::CollectedLeftOrigin, false;
        json_content_that_yrs_and_yjs_read_differently_is_refused => Attack::JsonDifferential, false;
        json_content_inside_sync_step_2_is_refused => Attack::JsonDifferential, true;
        a_content_kind_with_bit_4_set_is_refused => Attack::OddContentKind, false;
        a_client_repeated_within_one_update_is_refused => Attack::RepeatedClient, false;
        an_element_the_editor_does_not_have_is_refused => Attack::UnknownElement, false;
    }
}

/// A client that ignores the refusal and keeps sending gets nothing in:
/// neither another forbidden update nor an allowed one.
async fn a_client_that_keeps_its_connection_after_a_refusal_cannot_slip_in_another(
    backend: Backend,
) {
    let c = council(backend).await;
    let (addr, id) = (c.server.addr, c.meeting.id);
    let mut skola = Client::synced(addr, id, &c.tokens["skola"]).await;
    let setup = edit(&skola.doc, school_content);
    skola.send_raw(protocol::encode_update(&setup)).await;
    let mut polis = Client::synced(addr, id, &c.tokens["polis"]).await;
    polis
        .until("the school's text", |p| {
            p.section("section:skola").contains("skolans text")
        })
        .await;
    let forbidden = craft(Attack::ByLeftOrigin, &polis.doc);
    let second = craft(Attack::Delete, &polis.doc);
    let allowed = edit(&polis.doc, |txn| {
        let f = txn.get_or_insert_xml_fragment("section:polis");
        f.push_back(txn, XmlElementPrelim::empty("paragraph"));
    });
    // All three go out back to back, before the refusal can arrive.
    polis.send_raw(protocol::encode_update(&forbidden)).await;
    let _ = polis.try_send(protocol::encode_update(&second)).await;
    let _ = polis.try_send(protocol::encode_update(&allowed)).await;
    assert_eq!(polis.closed_by_server().await.0, 4403);

    let marker = edit(&skola.doc, |txn| {
        let f = txn.get_or_insert_xml_fragment("section:skola");
        f.push_back(txn, XmlElementPrelim::empty("blockquote"));
    });
    skola.send_raw(protocol::encode_update(&marker)).await;
    let mut viewer = Client::synced(addr, id, &c.tokens["sekreterare"]).await;
    viewer
        .until("the marker", |v| {
            v.section("section:skola").contains("<blockquote")
        })
        .await;
    assert_eq!(
        viewer.section("section:skola"),
        "<paragraph>skolans text</paragraph><paragraph align=\"left\"></paragraph><blockquote></blockquote>"
    );
    assert_eq!(viewer.section("section:polis"), "");
    c.server.stop().await;
}

/// After the secretary reassigns a section, its former owner's next update
/// into it is refused, on the connection that was open all along.
async fn a_reassigned_section_refuses_its_former_owner_at_once(backend: Backend) {
    let c = council(backend).await;
    let (addr, id) = (c.server.addr, c.meeting.id);
    let mut polis = Client::synced(addr, id, &c.tokens["polis"]).await;
    let mut viewer = Client::synced(addr, id, &c.tokens["sekreterare"]).await;
    polis.write("section:polis", "före").await;
    viewer
        .until("the police's edit", |v| {
            v.section("section:polis").contains("före")
        })
        .await;

    let reassigned = bearer_client(&c.tokens["sekreterare"])
        .patch(c.server.http(&format!("/api/meetings/{id}/agenda/polis")))
        .json(
            &serde_json::json!({ "owner": { "kind": "agency", "agency_id": c.agencies["Skola"] } }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reassigned.status(), 200);
    polis.write("section:polis", "efter").await;
    let (code, _) = polis.closed_by_server().await;
    assert_eq!(code, 4403);
    let mut skola = Client::synced(addr, id, &c.tokens["skola"]).await;
    skola.write("section:polis", "skolan tog över").await;
    viewer
        .until("the new owner's edit", |v| {
            v.section("section:polis").contains("skolan tog över")
        })
        .await;
    assert!(!viewer.section("section:polis").contains("efter"));
    c.server.stop().await;
}

/// Random edits from three agencies into all three sections, allowed and
/// forbidden mixed. Every section ends up with exactly its owner's edits,
/// and the server's document equals what the accepted updates produce.
async fn random_edits_leave_each_section_with_only_its_owners_text(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db).await;
    let dir = &server.db.dir;
    let meeting = create_meeting(&server.db, "Random").await;
    let agencies = ["polis", "skola", "brand"];
    let mut tokens = Vec::new();
    for name in agencies {
        let agency = dir.create_agency(name).await.unwrap().id;
        let (user, token) = agency_user_with_token(&server.db, name, false, Some(agency)).await;
        dir.set_participant(meeting.id, user.id, Role::Member)
            .await
            .unwrap();
        dir.add_section(
            meeting.id,
            &Section {
                id: SectionId::parse(name).unwrap(),
                number: "2".into(),
                title: name.into(),
                owner: SectionOwner::Agency { agency_id: agency },
            },
        )
        .await
        .unwrap();
        tokens.push(token);
    }
    let seed: u64 = std::env::var("GUARD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    // Printed so that a failure can be replayed with GUARD_SEED.
    eprintln!("random_edits: GUARD_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let reference = Doc::new();
    let mut clients = Vec::new();
    for token in &tokens {
        clients.push(Client::synced(server.addr, meeting.id, token).await);
    }
    let (mut accepted, mut refused) = (0, 0);
    for step in 0..120 {
        let who = rng.random_range(0..3);
        let target = if rng.random_bool(0.7) {
            who
        } else {
            rng.random_range(0..3)
        };
        let root = format!("section:{}", agencies[target]);
        // Each agency types only its own letter, so a section's text shows
        // whose edits it holds.
        let letter = agencies[who]
            .chars()
            .next()
            .unwrap()
            .to_ascii_uppercase()
            .to_string();
        let client = &mut clients[who];
        // Catch up with everything accepted so far, deletions included (they
        // do not move the state vector, so the texts are compared too): an
        // edit made on a stale copy could delete what is already deleted,
        // which changes nothing and is rightly accepted.
        let reference_sv = reference.transact().state_vector();
        let texts = |doc: &Doc| -> Vec<String> {
            let txn = doc.transact();
            agencies
                .iter()
                .map(|a| {
                    txn.get_text(format!("section:{a}").as_str())
                        .map(|t| t.get_string(&txn))
                        .unwrap_or_default()
                })
                .collect()
        };
        let reference_texts = texts(&reference);
        client
            .until("the accepted edits", |c| {
                c.doc.transact().state_vector() >= reference_sv && texts(&c.doc) == reference_texts
            })
            .await;
        let update = {
            let mut txn = client.doc.transact_mut();
            let text = txn.get_or_insert_text(root.as_str());
            let len = text.len(&txn);
            if len > 2 && rng.random_bool(0.25) {
                let at = rng.random_range(0..len - 1);
                text.remove_range(&mut txn, at, 1);
            } else {
                let at = rng.random_range(0..=len);
                text.insert(&mut txn, at, &letter.repeat(rng.random_range(1..4)));
            }
            txn.encode_update_v1()
        };
        client.send_raw(protocol::encode_update(&update)).await;
        if target == who {
            accepted += 1;
            reference
                .transact_mut()
                .apply_update(yrs::Update::decode_v1(&update).unwrap())
                .unwrap();
        } else {
            refused += 1;
            let (code, _) = client.closed_by_server().await;
            assert_eq!(code, 4403, "seed {seed}, step {step}");
            // Its local state diverged: it reconnects fresh, as a client must.
            clients[who] = Client::synced(server.addr, meeting.id, &tokens[who]).await;
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "seed {seed}: both kinds happened"
    );
    // Deletions do not move the state vector, so a last deletion could still
    // be on its way. A final insert from every client is a barrier: each
    // connection's updates are applied in order.
    for (who, client) in clients.iter_mut().enumerate() {
        let update = {
            let mut txn = client.doc.transact_mut();
            let text = txn.get_or_insert_text(format!("section:{}", agencies[who]).as_str());
            let letter = agencies[who]
                .chars()
                .next()
                .unwrap()
                .to_ascii_uppercase()
                .to_string();
            text.insert(&mut txn, 0, &letter);
            txn.encode_update_v1()
        };
        client.send_raw(protocol::encode_update(&update)).await;
        reference
            .transact_mut()
            .apply_update(yrs::Update::decode_v1(&update).unwrap())
            .unwrap();
    }
    let reference_sv = reference.transact().state_vector();
    let mut viewer = Client::synced(server.addr, meeting.id, &server.admin_token).await;
    viewer
        .until("every accepted edit", |v| {
            v.doc.transact().state_vector() >= reference_sv
        })
        .await;
    for name in agencies {
        let root = format!("section:{name}");
        let text_of = |doc: &Doc| {
            let txn = doc.transact();
            txn.get_text(root.as_str())
                .map(|t| t.get_string(&txn))
                .unwrap_or_default()
        };
        let got = text_of(&viewer.doc);
        assert_eq!(
            got,
            text_of(&reference),
            "seed {seed}: {root} equals the accepted updates"
        );
        let own = name.chars().next().unwrap().to_ascii_uppercase();
        assert!(
            got.chars().all(|c| c == own),
            "seed {seed}: {root} holds only its owner's text: {got}"
        );
    }
    assert_eq!(
        viewer.doc.transact().state_vector(),
        reference_sv,
        "seed {seed}"
    );
    server.stop().await;
}

/// A changed role applies at once: open connections reconnect (1012) and
/// write with the new role.
async fn a_changed_role_applies_to_open_connections_at_once(backend: Backend) {
    let c = council(backend).await;
    let (addr, id) = (c.server.addr, c.meeting.id);
    let mut polis = Client::synced(addr, id, &c.tokens["polis"]).await;
    let mut viewer = Client::synced(addr, id, &c.tokens["sekreterare"]).await;
    polis.write("section:polis", "som ledamot").await;
    viewer
        .until("the member's edit", |v| {
            v.section("section:polis").contains("som ledamot")
        })
        .await;
    let set_role = |role: &'static str| {
        bearer_client(&c.tokens["sekreterare"])
            .put(c.server.http(&format!(
                "/api/meetings/{id}/participants/{}",
                c.users["polis"].id
            )))
            .json(&serde_json::json!({ "role": role }))
            .send()
    };
    // The same role again changes nothing: the connection stays and writes.
    assert_eq!(set_role("member").await.unwrap().status(), 204);
    polis.write("section:polis", ", fortfarande").await;
    viewer
        .until("the member's second edit", |v| {
            v.section("section:polis").contains("fortfarande")
        })
        .await;
    assert_eq!(set_role("justerare").await.unwrap().status(), 204);
    assert_eq!(polis.closed_by_server().await.0, 1012);
    let mut verifier = Client::synced(addr, id, &c.tokens["polis"]).await;
    verifier.write("section:polis", "som justerare").await;
    assert_eq!(
        verifier.closed_by_server().await.0,
        4403,
        "verifiers write nothing"
    );
    c.server.stop().await;
}

/// Writing under the client id another connection announced in presence
/// is refused, even in one's own section: it would take that client's clock
/// space, and its real owner's next edits would be dropped as duplicates.
async fn writing_under_another_connections_client_id_is_refused(backend: Backend) {
    let c = council(backend).await;
    let (addr, id) = (c.server.addr, c.meeting.id);
    let mut skola = Client::synced(addr, id, &c.tokens["skola"]).await;
    skola.set_presence(r#"{}"#).await;
    let victim = skola.client_id();
    let mut viewer = Client::synced(addr, id, &c.tokens["sekreterare"]).await;
    viewer
        .until("the school's presence", |v| {
            v.presence.contains_key(&victim)
        })
        .await;

    let mut polis = Client::synced(addr, id, &c.tokens["polis"]).await;
    let impostor = Doc::with_client_id(victim);
    let update = edit(&impostor, |txn| {
        let own = txn.get_or_insert_xml_fragment("section:polis");
        own.push_back(txn, XmlElementPrelim::empty("paragraph"));
    });
    polis.send_raw(protocol::encode_update(&update)).await;
    let (code, reason) = polis.closed_by_server().await;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.contains("another client"), "{reason}");

    skola.write("section:skola", "min text").await;
    viewer
        .until("the school's edit", |v| {
            v.section("section:skola").contains("min text")
        })
        .await;
    assert_eq!(viewer.section("section:polis"), "");
    c.server.stop().await;
}

crate::on_both_backends!(
    writing_under_another_connections_client_id_is_refused,
    a_changed_role_applies_to_open_connections_at_once,
    a_client_that_keeps_its_connection_after_a_refusal_cannot_slip_in_another,
    a_reassigned_section_refuses_its_former_owner_at_once,
    random_edits_leave_each_section_with_only_its_owners_text,
);

/// Issue 23, defect 1: updates that build on what the server does not have
/// yet wait for it (`sync::waiting`), but only while the part they build on
/// is coming (the connection has not answered the server's sync step 1),
/// and whatever fills them in is checked like any update, and they are
/// checked again as a whole once it is there.
mod waiting {
    use super::*;
    use crate::craft::{self, Block, Content, Run};

    /// The police's y-websocket-like client, connected but not yet
    /// answering the server's sync step 1 (it has not read it).
    async fn unanswered(c: &Council) -> Client {
        Client::connect(c.server.addr, c.meeting.id, &c.tokens["polis"]).await
    }

    async fn viewer_with_school_text(c: &Council) -> (Client, Client, String) {
        let mut skola = c.ws("skola").await;
        let setup = edit(&skola.doc, school_content);
        skola.send_raw(protocol::encode_update(&setup)).await;
        let mut viewer = c.ws("sekreterare").await;
        viewer
            .until("the school's text", |v| {
                v.section("section:skola").contains("skolans text")
            })
            .await;
        let before = viewer.section("section:skola");
        (skola, viewer, before)
    }

    /// A paragraph type, its text and a character, under `client` from
    /// clock 0: the part a block at clock 3 builds on.
    fn paragraph_run(client: u64, root: &str) -> Run {
        Run {
            client,
            clock: 0,
            blocks: vec![
                Block::in_root(root, Content::Type(3, Some("paragraph".into()))),
                Block::in_item((client, 0), Content::Type(6, None)),
                Block::in_item((client, 1), Content::String("I".into())),
            ],
        }
    }

    fn ahead(client: u64, root: &str) -> Vec<u8> {
        craft::encode(
            &[Run {
                client,
                clock: 3,
                blocks: vec![Block::in_root(root, Content::String("x".into()))],
            }],
            &[],
            &[],
        )
    }

    /// What y-websocket does: text typed offline, then a keystroke the
    /// moment the socket opens, which reaches the server before the sync
    /// step 2 carrying the offline text. Accepted, all of it, in order.
    async fn a_keystroke_sent_before_the_sync_step_2_it_builds_on_waits_for_it(backend: Backend) {
        let c = council(backend).await;
        let mut viewer = c.ws("sekreterare").await;
        let offline = Doc::new();
        let _typed_offline = edit(&offline, |txn| {
            let f = txn.get_or_insert_xml_fragment("section:polis");
            let p = f.push_back(txn, XmlElementPrelim::empty("paragraph"));
            p.push_back(txn, XmlTextPrelim::new("offline"));
        });
        let mut polis = unanswered(&c).await;
        polis.doc = offline;
        let keystroke = edit(&polis.doc, |txn| {
            let f = txn.get_or_insert_xml_fragment("section:polis");
            let Some(XmlOut::Element(p)) = f.get(txn, 0) else {
                panic!("the paragraph")
            };
            let Some(XmlOut::Text(t)) = p.get(txn, 0) else {
                panic!("its text")
            };
            t.insert(txn, 7, " och mer");
        });
        polis.send_raw(protocol::encode_update(&keystroke)).await;
        // Reading the server's sync step 1 answers it with the offline text.
        polis.until("synced", |p| p.synced).await;
        viewer
            .until("all of it", |v| {
                v.section("section:polis") == "<paragraph>offline och mer</paragraph>"
            })
            .await;
        assert!(polis.closed.is_none());
        let stored = stored_doc(c.server.store(), c.meeting.id).await;
        assert_eq!(
            fragment_text(&stored, "section:polis"),
            "<paragraph>offline och mer</paragraph>"
        );
        c.server.stop().await;
    }

    /// Finding 1 of round two while waiting is allowed: a block ahead of
    /// its clock in the sender's own section waits, and the part that
    /// fills the gap, in the school's section, is refused on its own.
    async fn a_gap_filled_with_a_forbidden_part_is_refused(backend: Backend) {
        let c = council(backend).await;
        let (_skola, mut viewer, before) =
            gap_filled_and_refused(&c, "section:polis", "section:skola").await;
        school_takes_a_marker(&mut viewer, &before).await;
        assert_eq!(viewer.section("section:polis"), "", "nothing of it applied");
        c.server.stop().await;
    }

    /// The other way round: what waits is forbidden, what fills its gap is
    /// allowed. The filler is taken; the waiting block is then checked and
    /// refused, and nothing of it reaches the school's section.
    async fn a_waiting_update_is_checked_once_its_gap_is_filled(backend: Backend) {
        let c = council(backend).await;
        let (_skola, mut viewer, before) =
            gap_filled_and_refused(&c, "section:skola", "section:polis").await;
        viewer
            .until("the filler", |v| v.section("section:polis").contains(">I<"))
            .await;
        school_takes_a_marker(&mut viewer, &before).await;
        c.server.stop().await;
    }

    /// From a connection that has not answered the server's sync step 1,
    /// a block ahead of its clock in `waits`, then the part that fills its
    /// gap in `fills`: the connection is refused for the school's section.
    /// Returns the school, the viewer, and the school's text before.
    async fn gap_filled_and_refused(
        c: &Council,
        waits: &str,
        fills: &str,
    ) -> (Client, Client, String) {
        let (skola, viewer, before) = viewer_with_school_text(c).await;
        let fresh: u64 = rand::rng().random_range(1_000_000..2_000_000);
        let mut polis = unanswered(c).await;
        polis
            .send_raw(protocol::encode_update(&ahead(fresh, waits)))
            .await;
        let fill = craft::encode(&[paragraph_run(fresh, fills)], &[], &[]);
        let _ = polis.try_send(protocol::encode_update(&fill)).await;
        let (code, reason) = polis.closed_by_server().await;
        assert_eq!(code, 4403, "{reason}");
        assert!(reason.contains("section skola"), "{reason}");
        (skola, viewer, before)
    }

    /// The school writes a marker after all that: its section is what it
    /// was, and the marker.
    async fn school_takes_a_marker(viewer: &mut Client, before: &str) {
        viewer.write("section:skola", "efter").await;
        viewer
            .until("the marker", |v| {
                v.section("section:skola").contains("efter")
            })
            .await;
        assert_eq!(
            viewer.section("section:skola"),
            format!("{before}<paragraph>efter</paragraph>")
        );
    }

    /// A gap nothing is coming to fill: after the connection has answered
    /// the server's sync step 1 it is refused at once, as before.
    async fn a_gap_after_the_sync_is_refused_at_once(backend: Backend) {
        let c = council(backend).await;
        let fresh: u64 = rand::rng().random_range(1_000_000..2_000_000);
        let mut polis = c.ws("polis").await;
        let started = std::time::Instant::now();
        polis
            .send_raw(protocol::encode_update(&ahead(fresh, "section:polis")))
            .await;
        let (code, reason) = polis.closed_by_server().await;
        assert_eq!(code, 4403, "{reason}");
        assert!(reason.contains("does not continue"), "{reason}");
        assert!(
            started.elapsed() < protokoll::sync::waiting::MAX_WAIT,
            "refused without waiting"
        );
        c.server.stop().await;
    }

    /// A gap left open while the sync step 1 is unanswered waits at most
    /// `MAX_WAIT`, then the connection is refused with the reason.
    async fn a_gap_never_filled_is_refused_when_its_wait_ends(backend: Backend) {
        let c = council(backend).await;
        let fresh: u64 = rand::rng().random_range(1_000_000..2_000_000);
        let mut polis = unanswered(&c).await;
        let started = std::time::Instant::now();
        polis
            .send_raw(protocol::encode_update(&ahead(fresh, "section:polis")))
            .await;
        let (code, reason) = polis.closed_by_server().await;
        assert_eq!(code, 4403, "{reason}");
        assert!(reason.contains("never received"), "{reason}");
        assert!(started.elapsed() >= protokoll::sync::waiting::MAX_WAIT);
        let viewer = c.ws("sekreterare").await;
        assert_eq!(viewer.section("section:polis"), "");
        c.server.stop().await;
    }

    /// More updates than a connection may hold back: refused.
    async fn a_connection_holds_back_a_bounded_number_of_updates(backend: Backend) {
        let c = council(backend).await;
        let fresh: u64 = rand::rng().random_range(1_000_000..2_000_000);
        let mut polis = unanswered(&c).await;
        for i in 0..=protokoll::sync::waiting::MAX_UPDATES as u32 {
            let update = craft::encode(
                &[Run {
                    client: fresh,
                    clock: 3 + i,
                    blocks: vec![Block::in_root("section:polis", Content::String("x".into()))],
                }],
                &[],
                &[],
            );
            if polis
                .try_send(protocol::encode_update(&update))
                .await
                .is_err()
            {
                break;
            }
        }
        let (code, reason) = polis.closed_by_server().await;
        assert_eq!(code, 4403, "{reason}");
        assert!(reason.contains("too many updates waited"), "{reason}");
        c.server.stop().await;
    }

    crate::on_both_backends!(
        a_keystroke_sent_before_the_sync_step_2_it_builds_on_waits_for_it,
        a_gap_filled_with_a_forbidden_part_is_refused,
        a_waiting_update_is_checked_once_its_gap_is_filled,
        a_gap_after_the_sync_is_refused_at_once,
        a_gap_never_filled_is_refused_when_its_wait_ends,
        a_connection_holds_back_a_bounded_number_of_updates,
    );
}
