//! Finds what people forget to mark: personnummer and samordningsnummer in
//! every written form (checked by their date and Luhn digit, so that a date,
//! a phone number or an amount does not trip it), and, as softer hints,
//! e-mail addresses and phone numbers. Pure text in, findings out.
//!
//! The forms of a personnummer (Skatteverket): `YYMMDD-NNNC`, `YYMMDD+NNNC`
//! (a person of 100 or more), `YYMMDDNNNC`, `YYYYMMDD-NNNC`,
//! `YYYYMMDDNNNC`, and with a space for the dash; `C` is the Luhn digit
//! over the ten digits `YYMMDDNNN`. A samordningsnummer adds 60 to the day.

use serde::Serialize;

/// What a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Personnummer,
    Samordningsnummer,
    /// A hint: an e-mail address.
    Email,
    /// A hint: a Swedish phone number.
    Phone,
}

impl FindingKind {
    /// Whether the finding is only a hint: a personnummer or
    /// samordningsnummer is never published, a hint is for a person to judge.
    pub fn is_hint(self) -> bool {
        matches!(self, Self::Email | Self::Phone)
    }
}

/// One finding: its kind and where it stands in the text (byte offsets,
/// on character boundaries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub start: usize,
    pub end: usize,
}

/// Every finding in `text`, in the order they stand.
pub fn findings(text: &str) -> Vec<Finding> {
    let mut found = identity_numbers(text);
    let taken: Vec<(usize, usize)> = found.iter().map(|f| (f.start, f.end)).collect();
    let overlaps = |s: usize, e: usize| taken.iter().any(|&(a, b)| s < b && a < e);
    found.extend(emails(text));
    found.extend(
        phones(text)
            .into_iter()
            .filter(|f| !overlaps(f.start, f.end)),
    );
    found.sort_by_key(|f| (f.start, f.end));
    found
}

/// Whether `text` holds a personnummer or samordningsnummer.
pub fn has_identity_number(text: &str) -> bool {
    !identity_numbers(text).is_empty()
}

fn digit_at(bytes: &[u8], i: usize) -> bool {
    bytes.get(i).is_some_and(u8::is_ascii_digit)
}

/// Whether the character before byte `i` ends a word or number that a
/// finding starting at `i` would be a part of.
fn joined_before(text: &str, i: usize) -> bool {
    let Some(c) = text[..i].chars().next_back() else {
        return false;
    };
    if c.is_alphanumeric() || c == '_' {
        return true;
    }
    // "12-800101-1234", "1.8001011234": a longer number.
    matches!(c, '-' | '+' | '.' | ',' | '/' | ':')
        && text[..i - c.len_utf8()]
            .chars()
            .next_back()
            .is_some_and(|d| d.is_ascii_digit())
}

/// Whether the text from byte `i` on continues a finding ending there.
fn joined_after(text: &str, i: usize) -> bool {
    let mut rest = text[i..].chars();
    match rest.next() {
        None => false,
        Some(c) if c.is_alphanumeric() || c == '_' => true,
        Some('-' | '+' | '/' | ':') | Some('.' | ',') => {
            rest.next().is_some_and(|d| d.is_ascii_digit())
        }
        Some(_) => false,
    }
}

fn identity_numbers(text: &str) -> Vec<Finding> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !digit_at(bytes, i) || (i > 0 && digit_at(bytes, i - 1)) || joined_before(text, i) {
            i += 1;
            continue;
        }
        let run = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        let candidate = match run {
            // YYMMDD or YYYYMMDD, then a separator and four digits.
            6 | 8 => {
                let sep = i + run;
                let four = sep + 1;
                let separated = matches!(bytes.get(sep), Some(b'-' | b'+' | b' '))
                    && (four..four + 4).all(|j| digit_at(bytes, j))
                    && !digit_at(bytes, four + 4);
                separated.then(|| {
                    let mut digits: Vec<u8> = bytes[i..sep].to_vec();
                    digits.extend_from_slice(&bytes[four..four + 4]);
                    (digits, four + 4)
                })
            }
            10 | 12 => Some((bytes[i..i + run].to_vec(), i + run)),
            _ => None,
        };
        if let Some((digits, end)) = candidate
            && !joined_after(text, end)
            && let Some(kind) = identity_kind(&digits)
        {
            found.push(Finding {
                kind,
                start: i,
                end,
            });
            i = end;
            continue;
        }
        i += run.max(1);
    }
    found
}

/// The kind of a 10- or 12-digit number, if it is a valid personnummer or
/// samordningsnummer: a date that exists (day + 60 for a samordningsnummer),
/// a century of 18, 19 or 20 in the long form, and the Luhn digit right.
fn identity_kind(digits: &[u8]) -> Option<FindingKind> {
    let value = |s: &[u8]| s.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    let ten = match digits.len() {
        10 => digits,
        12 if (18..=20).contains(&value(&digits[..2])) => &digits[2..],
        _ => return None,
    };
    let month = value(&ten[2..4]);
    let day = value(&ten[4..6]);
    let (day, kind) = if day > 60 {
        (day - 60, FindingKind::Samordningsnummer)
    } else {
        (day, FindingKind::Personnummer)
    };
    let longest = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        // The century is not always written: 29 February passes.
        2 => 29,
        _ => return None,
    };
    if day == 0 || day > longest || !luhn(ten) {
        return None;
    }
    Some(kind)
}

/// The Luhn check over ten digits: the last is the check digit of the nine
/// before it (weights 2, 1, 2, …).
fn luhn(ten: &[u8]) -> bool {
    let sum: u32 = ten
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let n = u32::from(d - b'0') * if i % 2 == 0 { 2 } else { 1 };
            n / 10 + n % 10
        })
        .sum();
    sum % 10 == 0
}

fn emails(text: &str) -> Vec<Finding> {
    let bytes = text.as_bytes();
    let local = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
    let domain = |b: u8| b.is_ascii_alphanumeric() || b".-".contains(&b);
    let mut found = Vec::new();
    for (at, _) in text.match_indices('@') {
        let start = at - bytes[..at].iter().rev().take_while(|b| local(**b)).count();
        let mut end = at + 1 + bytes[at + 1..].iter().take_while(|b| domain(**b)).count();
        // A sentence's full stop is not part of the address.
        while end > at + 1 && matches!(bytes[end - 1], b'.' | b'-') {
            end -= 1;
        }
        let host = &text[at + 1..end];
        let tld = host.rsplit('.').next().unwrap_or("");
        if start < at
            && host.contains('.')
            && !host.starts_with('.')
            && tld.len() >= 2
            && tld.bytes().all(|b| b.is_ascii_alphabetic())
        {
            found.push(Finding {
                kind: FindingKind::Email,
                start,
                end,
            });
        }
    }
    found
}

/// Swedish phone numbers: `0` and 7 to 9 more digits, or `+46` and 7 to 9
/// digits, with single spaces or dashes between groups ("08-508 250 00",
/// "070-123 45 67", "+46 70 123 45 67").
fn phones(text: &str) -> Vec<Finding> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let (national, after_prefix) = if bytes[i..].starts_with(b"+46") {
            (false, i + 3)
        } else if bytes[i] == b'0' && digit_at(bytes, i + 1) && bytes[i + 1] != b'0' {
            (true, i)
        } else {
            i += 1;
            continue;
        };
        if joined_before(text, i) || (i > 0 && digit_at(bytes, i - 1)) {
            i += 1;
            continue;
        }
        // Digits with single separators between them.
        let mut j = after_prefix;
        let mut digits = 0;
        let mut end = j;
        while j < bytes.len() {
            if bytes[j].is_ascii_digit() {
                digits += 1;
                j += 1;
                end = j;
            } else if matches!(bytes[j], b' ' | b'-') && digit_at(bytes, j + 1) && digits > 0
                || (!national && j == after_prefix && bytes[j] == b' ')
            {
                j += 1;
            } else {
                break;
            }
        }
        let wanted = if national { 8..=10 } else { 7..=9 };
        if wanted.contains(&digits) && !joined_after(text, end) {
            found.push(Finding {
                kind: FindingKind::Phone,
                start: i,
                end,
            });
            i = end;
        } else {
            i = end.max(i + 1);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Valid personnummer for a date and a serial: the Luhn digit added.
    fn with_check(nine: &str) -> String {
        (0..10)
            .map(|c| format!("{nine}{c}"))
            .find(|ten| luhn(ten.as_bytes()))
            .unwrap()
    }

    fn kinds(text: &str) -> Vec<(FindingKind, &str)> {
        findings(text)
            .into_iter()
            .map(|f| (f.kind, &text[f.start..f.end]))
            .collect()
    }

    #[test]
    fn the_luhn_digit_of_the_known_example_is_right() {
        // Skatteverket's example 811218-9876.
        assert!(luhn(b"8112189876"));
        assert!(!luhn(b"8112189875"));
        assert_eq!(with_check("811218987"), "8112189876");
    }

    #[test]
    fn every_written_form_is_found() {
        let ten = with_check("811218987");
        let (date, serial) = ten.split_at(6);
        for form in [
            format!("{date}-{serial}"),
            format!("{date}+{serial}"),
            format!("{date} {serial}"),
            format!("{date}{serial}"),
            format!("19{date}-{serial}"),
            format!("19{date}{serial}"),
            format!("19{date} {serial}"),
        ] {
            let text = format!("Pojken ({form}) har anmälts.");
            assert_eq!(
                kinds(&text),
                vec![(FindingKind::Personnummer, form.as_str())],
                "{form}"
            );
        }
    }

    #[test]
    fn a_samordningsnummer_is_told_apart() {
        // Born 1990-05-03: day 03 + 60 = 63.
        let ten = with_check("900563123");
        let text = format!("samordningsnummer {}-{}", &ten[..6], &ten[6..]);
        assert_eq!(
            kinds(&text),
            vec![(FindingKind::Samordningsnummer, &text[18..])]
        );
    }

    #[test]
    fn a_corpus_of_valid_numbers_is_found_and_invalid_ones_are_not() {
        let mut valid = 0;
        let mut refused = 0;
        for year in (0..100).step_by(7) {
            for month in 1..=12 {
                for day in [1, 15, 28, 61, 75, 88] {
                    for serial in ["001", "238", "499", "870"] {
                        let nine = format!("{year:02}{month:02}{day:02}{serial}");
                        let ten = with_check(&nine);
                        let text = format!("nr {}-{} i ärendet", &ten[..6], &ten[6..]);
                        let expected = if day > 60 {
                            FindingKind::Samordningsnummer
                        } else {
                            FindingKind::Personnummer
                        };
                        assert_eq!(findings(&text).len(), 1, "{text}");
                        assert_eq!(findings(&text)[0].kind, expected, "{text}");
                        valid += 1;
                        // Every other check digit is wrong.
                        let last = ten.as_bytes()[9] - b'0';
                        for wrong in (0..10).filter(|d| *d != last) {
                            let bad = format!("{}-{}{wrong}", &ten[..6], &ten[6..9]);
                            assert!(!has_identity_number(&bad), "{bad}");
                            refused += 1;
                        }
                    }
                }
            }
        }
        assert!(valid > 1000 && refused > 9000, "{valid} {refused}");
    }

    #[test]
    fn impossible_dates_are_not_personnummer() {
        for nine in [
            "811318987",
            "810230987",
            "810431123",
            "810100123",
            "810192123",
        ] {
            let ten = with_check(nine);
            assert!(findings(&ten).is_empty(), "{ten}");
        }
        // A 12-digit form with a century that no living person has.
        let ten = with_check("811218987");
        assert!(findings(&format!("17{ten}")).is_empty());
    }

    #[test]
    fn dates_amounts_times_and_longer_numbers_are_not_found() {
        let ten = with_check("811218987");
        for text in [
            "Stadsdelsnämnden 180315 som ett anmälningsärende",
            "den 9 mars 2018, 2018-03-09 och 20180309",
            "kl. 18.00–19.00 i vecka 9",
            "budgeten 1 250 000 kr och 12 500,50 kr",
            "ANDT-program 2018-2021",
            "diarienummer 2018-12-1234",
            // Part of a longer number, or of a word.
            &format!("12{ten}3"),
            &format!("ref{ten}"),
            &format!("1-{ten}"),
        ] {
            let found: Vec<_> = kinds(text)
                .into_iter()
                .filter(|(k, _)| !k.is_hint())
                .collect();
            assert!(found.is_empty(), "{text}: {found:?}");
        }
    }

    #[test]
    fn emails_and_phone_numbers_are_hints() {
        let text = "Kontakt: anna.berg@stockholm.se eller 08-508 250 00, mobil \
                    070-123 45 67 och +46 70 123 45 67.";
        assert_eq!(
            kinds(text),
            vec![
                (FindingKind::Email, "anna.berg@stockholm.se"),
                (FindingKind::Phone, "08-508 250 00"),
                (FindingKind::Phone, "070-123 45 67"),
                (FindingKind::Phone, "+46 70 123 45 67"),
            ]
        );
        assert!(FindingKind::Phone.is_hint() && FindingKind::Email.is_hint());
        assert!(!FindingKind::Personnummer.is_hint());
        // Not addresses: a handle, a host without a dot.
        assert!(kinds("@polisen och a@b och x@y.1").is_empty());
    }

    #[test]
    fn the_seed_protocol_has_no_identity_numbers() {
        // The real protocol of a Brå meeting (2018): dates such as 180315,
        // times, years, amounts; no identity number and no hint.
        let seed = include_str!("testdata/seed-protocol.txt");
        assert!(seed.contains("180315"));
        assert_eq!(kinds(seed), vec![]);
    }
}
