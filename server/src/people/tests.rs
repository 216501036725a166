//! Unit tests of the people module: usernames, names, text rules, passwords,
//! section ids, roles, dates and times.

use super::*;

#[test]
fn usernames_are_lowercased_and_restricted() {
    assert_eq!(
        Username::parse(" Polis.Anna ").unwrap().as_str(),
        "polis.anna"
    );
    assert!(Username::parse("a").is_err());
    assert!(Username::parse("anna svensson").is_err());
    assert!(Username::parse("åsa").is_err());
}

#[test]
fn usernames_fold_padding_and_compatibility_forms() {
    for raw in [
        "skola",
        "skola ",
        "\u{a0}skola",
        "\tskola",
        "skola\u{3000}",
        "ｓｋｏｌａ",
        "SKOLA",
        "\u{2003}Skola\n",
    ] {
        assert_eq!(Username::parse(raw).unwrap().as_str(), "skola", "{raw:?}");
    }
    assert!(Username::parse("sko la").is_err());
    assert!(
        Username::parse("sko\u{200b}la").is_err(),
        "zero-width space"
    );
    assert!(Username::parse("skola\u{202e}").is_err());
    assert!(Username::parse(&"a".repeat(2000)).is_err());
}

#[test]
fn names_refuse_bidi_controls_and_separators() {
    for bad in [
        "Polis\u{202e}siloP",
        "\u{202a}x",
        "a\u{2066}b",
        "a\u{2069}",
        "a\u{200e}b",
        "a\u{200f}b",
        "a\u{061c}b",
        "rad\u{2028}två",
        "stycke\u{2029}två",
        "slut\u{2029}",
        "\u{2028}början",
        "nul\u{0}",
    ] {
        let err = parse_name(bad).unwrap_err();
        assert!(err.0.contains("bidirectional"), "{bad:?}: {err}");
    }
    assert_eq!(
        parse_name("  Räddningstjänsten ").unwrap(),
        "Räddningstjänsten"
    );
    assert_eq!(
        parse_name("شرطة").unwrap(),
        "شرطة",
        "right-to-left text itself is fine"
    );
    assert!(parse_name("").is_err());
    assert!(parse_name(&"x".repeat(121)).is_err());
}

#[test]
fn one_rule_for_every_human_readable_field() {
    for bad in [
        "Fel\u{202e}tgiläv",
        "osynligt\u{200b}ord",
        "bom\u{feff}",
        "ord\u{2060}fog",
        "\u{fff9}dold\u{fffb}",
        "\u{e0041}tagg",
        "tab\tbar",
    ] {
        for lines in [Lines::One, Lines::Many] {
            let err = human_text(bad, 100, lines, "len").unwrap_err();
            assert_eq!(err.0, FORBIDDEN_TEXT, "{bad:?} {lines:?}");
        }
    }
    // Line breaks: only where several lines make sense.
    assert!(human_text("rad ett\nrad två", 100, Lines::One, "len").is_err());
    assert!(parse_name("rad ett\nrad två").is_err());
    assert_eq!(
        parse_reason(" § 3 saknas.\r\n§ 4 är fel.\r\n").unwrap(),
        "§ 3 saknas.\n§ 4 är fel."
    );
    assert_eq!(parse_reason("a\rb").unwrap(), "a\nb");
    assert!(
        parse_reason("rad\u{2028}två").is_err(),
        "use a plain line break"
    );
    assert_eq!(
        parse_reason(" \n ").unwrap_err().0,
        "say why the protocol is rejected"
    );
    assert!(parse_reason(&"x".repeat(MAX_REASON_CHARS)).is_ok());
    assert!(parse_reason(&"x".repeat(MAX_REASON_CHARS + 1)).is_err());
    // Joiners that scripts and emoji need stay.
    assert!(parse_name("می\u{200c}خواهم").is_ok());
    assert!(parse_name("👩\u{200d}💻 Anna").is_ok());
    assert_eq!(optional_name("  ").unwrap(), "");
    assert!(optional_name("Plats\u{202e}").is_err());
}

#[test]
fn names_that_read_the_same_clash() {
    let holm = NameKey::of("Anders Holm");
    for same in [
        "anders holm",
        "ANDERS  HOLM",
        "ＡＮＤＥＲＳ ＨＯＬＭ",
        "Anders\u{a0}Holm",
        "\u{410}nders Holm",
        "Anders Ho\u{200c}lm",
        "Anders Holrn",
        "Anders Н\u{43e}lm",
    ] {
        assert!(NameKey::of(same).clashes(&holm), "{same:?}");
    }
    for other in ["Anders Holmberg", "Andreas Holm", "Anders Hälm"] {
        assert!(!NameKey::of(other).clashes(&holm), "{other:?}");
    }
    assert!(!NameKey::of("Åsa Lind").clashes(&NameKey::of("Asa Lind")));
    assert!(!NameKey::of("Öberg").clashes(&NameKey::of("Oberg")));
    assert_eq!(
        first_clash(&["Eva", "Anders Holm", "Maria", "anders holm"]),
        Some(("Anders Holm", "anders holm"))
    );
    assert_eq!(first_clash(&["Eva", "Anders Holm", "Maria"]), None);
}

#[test]
fn passwords_need_ten_characters() {
    assert!(NewPassword::parse("kort").is_err());
    assert!(NewPassword::parse("tio tecken").is_ok());
    assert_eq!(
        format!("{:?}", NewPassword::parse("hemligt lösen").unwrap()),
        "NewPassword(***)"
    );
}

#[test]
fn section_ids_from_swedish_titles() {
    assert_eq!(SectionId::from_title("Äldreomsorg").as_str(), "aldreomsorg");
    assert_eq!(
        SectionId::from_title("Enheten för ung fritid").as_str(),
        "enheten-for-ung-fritid"
    );
    assert_eq!(SectionId::from_title("§§").as_str(), "section");
    assert!(SectionId::parse("polis").is_ok());
    assert!(SectionId::parse("Polis").is_err());
    assert!(SectionId::parse("").is_err());
}

#[test]
fn roles_round_trip() {
    for role in [Role::Secretary, Role::Chair, Role::Justerare, Role::Member] {
        assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
    }
    assert!("admin".parse::<Role>().is_err());
}

#[test]
fn dates_and_times_are_checked() {
    assert_eq!(parse_date("2018-03-09").unwrap(), "2018-03-09");
    assert!(parse_date("2018-02-30").is_err());
    assert_eq!(parse_time("09:00").unwrap(), "09:00");
    assert!(parse_time("25:00").is_err());
}
