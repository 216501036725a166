//! The protocol as CommonMark. User text is escaped so that it stays text:
//! characters that are markup anywhere are backslash-escaped, and those
//! that are markup only at the start of a line are escaped there. Every
//! line ending CommonMark knows (LF, CR and CRLF) is a line ending here
//! too: a lone carriage return would otherwise start a new line, and with
//! it a heading, a list or a rule, behind the escaping's back. Only the
//! server's own hex and base64 values go into code spans; names never do.

use std::fmt::Write;

use crate::model::{Block, Inline, Mark, Rendition, display_time, role_label};
use crate::text;

/// Escapes text for a Markdown paragraph or table cell. `line_start` says
/// whether the text begins a line, where `#`, `>`, `-`, `+`, `=` and `1.`
/// would start a block.
pub fn escape(s: &str, mut line_start: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    let mut digits = false;
    while let Some(c) = chars.next() {
        // CRLF and a lone CR are line endings, as LF is.
        let c = if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            '\n'
        } else {
            c
        };
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '!' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '#' | '-' | '+' | '=' if line_start => {
                out.push('\\');
                out.push(c);
            }
            '.' | ')' if digits => {
                out.push('\\');
                out.push(c);
            }
            ' ' if line_start => {
                // Leading spaces would make an indented code block.
                out.push_str("&#32;");
                continue;
            }
            '\t' if line_start => {
                out.push_str("&#9;");
                continue;
            }
            '\n' => {
                out.push_str("\\\n");
                line_start = true;
                digits = false;
                continue;
            }
            c => out.push(c),
        }
        digits = (line_start || digits) && c.is_ascii_digit();
        line_start = false;
    }
    out
}

pub fn render(r: Rendition<'_>) -> String {
    let p = r.protocol;
    let mut out = String::new();
    if !p.meeting.body.is_empty() {
        let _ = writeln!(out, "**{}**\n", escape(&p.meeting.body, true));
    }
    let _ = writeln!(out, "# Protokoll: {}\n", escape(&p.meeting.title, false));
    let mut facts = text::facts(p);
    facts.push(("Status", text::status_line(r).to_owned()));
    out.push_str("| | |\n|---|---|\n");
    for (label, value) in facts {
        let _ = writeln!(out, "| {label} | {} |", cell(&value));
    }
    out.push_str("\n## Närvarande\n\n");
    for (agency, people) in text::attendance(p) {
        let names: Vec<String> = people.iter().map(|n| escape(n, false)).collect();
        let _ = writeln!(
            out,
            "- **{}:** {}",
            escape(&agency, false),
            names.join("; ")
        );
    }
    for item in &p.agenda {
        let hashes = if item.number.contains('.') {
            "###"
        } else {
            "##"
        };
        let _ = writeln!(
            out,
            "\n{hashes} § {} {}\n",
            escape(&item.number, false),
            escape(&item.title, false)
        );
        if let Some(owner) = text::owner_line(item) {
            let _ = writeln!(out, "*{}*\n", escape(&owner, false));
        }
        blocks(&mut out, &item.content, "");
    }
    out.push_str("\n## Underskrifter\n\n");
    for s in &p.secretaries {
        let _ = writeln!(
            out,
            "- Vid protokollet: {}, sekreterare",
            escape(&s.name, false)
        );
    }
    for v in &p.verifiers {
        let signed = r.verification.and_then(|ver| {
            ver.signoffs
                .iter()
                .find(|s| s.name == v.name && s.role == v.role)
        });
        let status = match signed {
            Some(s) => format!("justerat elektroniskt {}", display_time(&s.at)),
            None => "ej justerat".to_owned(),
        };
        let _ = writeln!(
            out,
            "- Justeras: {}, {}: {status}",
            escape(&v.name, false),
            role_label(&v.role).to_lowercase(),
        );
    }
    out.push_str("\n---\n\n");
    for line in text::seal_lines(r) {
        let value = if line.verbatim {
            code_span(&line.value)
        } else {
            escape(&line.value, false)
        };
        let _ = writeln!(out, "{}: {value}  ", escape(&line.label, true));
    }
    out
}

/// Text for a table cell: a line break would end the table, so every line
/// ending becomes a space.
fn cell(s: &str) -> String {
    escape(&s.replace(['\r', '\n'], " "), false)
}

/// A code span for the server's own values (hex hashes, base64
/// signatures). Should one ever hold a backtick, the span's fence is made
/// longer than any run of backticks inside, as CommonMark allows, so it
/// cannot be closed early.
fn code_span(s: &str) -> String {
    let s = s.replace(['\r', '\n'], " ");
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    if longest == 0 {
        format!("{fence}{s}{fence}")
    } else {
        format!("{fence} {s} {fence}")
    }
}

fn blocks(out: &mut String, blocks_: &[Block], indent: &str) {
    for block in blocks_ {
        match block {
            Block::Paragraph { content } => {
                let _ = writeln!(out, "{indent}{}\n", inlines(content, indent));
            }
            Block::Heading { content, .. } => {
                let _ = writeln!(out, "{indent}**{}**\n", inlines(content, indent));
            }
            Block::BulletList { content } => {
                for item in content {
                    list_item(out, &item.content, indent, "- ");
                }
                out.push('\n');
            }
            Block::OrderedList { start, content } => {
                for (i, item) in content.iter().enumerate() {
                    let marker = format!("{}. ", *start as usize + i);
                    list_item(out, &item.content, indent, &marker);
                }
                out.push('\n');
            }
        }
    }
}

fn list_item(out: &mut String, content: &[Block], indent: &str, marker: &str) {
    let inner = format!("{indent}{}", " ".repeat(marker.len()));
    let mut rendered = String::new();
    blocks(&mut rendered, content, &inner);
    let rendered = rendered.trim_end();
    let body = rendered.strip_prefix(inner.as_str()).unwrap_or(rendered);
    // Items of a tight list: no blank lines between paragraphs of one item.
    let _ = writeln!(out, "{indent}{marker}{}", body.replace("\n\n", "\n"));
}

fn inlines(content: &[Inline], indent: &str) -> String {
    let mut out = String::new();
    let mut line_start = true;
    for inline in content {
        match inline {
            Inline::HardBreak => {
                let _ = write!(out, "\\\n{indent}");
                line_start = true;
            }
            Inline::Text { text, marks } => {
                let mut escaped = escape(text, line_start).replace('\n', &format!("\n{indent}"));
                line_start = false;
                for mark in marks.iter().rev() {
                    escaped = match mark {
                        Mark::Bold => format!("**{escaped}**"),
                        Mark::Italic => format!("*{escaped}*"),
                        Mark::Link { href } => format!("[{escaped}](<{}>)", link_target(href)),
                    };
                }
                out.push_str(&escaped);
            }
        }
    }
    out
}

/// A link destination in angle brackets may hold anything but `<`, `>`
/// and line breaks; those are percent-encoded, and so is the backslash,
/// which would escape the closing `>`.
fn link_target(href: &str) -> String {
    href.replace('\\', "%5C")
        .replace('<', "%3C")
        .replace('>', "%3E")
        .replace('\n', "%0A")
        .replace('\r', "%0D")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn markup_characters_stay_text() {
        assert_eq!(escape("# rubrik", true), "\\# rubrik");
        assert_eq!(escape("a # b", false), "a # b");
        assert_eq!(escape("1. punkt", true), "1\\. punkt");
        assert_eq!(escape("kl. 9-11", false), "kl. 9-11");
        assert_eq!(escape("*fet* <b>", false), "\\*fet\\* \\<b\\>");
        assert_eq!(escape("[x](javascript:y)", false), "\\[x\\](javascript:y)");
    }

    #[test]
    fn hostile_protocol_renders_as_text() {
        let p = testdata::hostile();
        let md = render(Rendition {
            protocol: &p,
            hash: "abc",
            verification: None,
        });
        assert!(md.contains("\\<script\\>alert(1)\\</script\\>"), "{md}");
        assert!(md.contains("](<https://example.se/?a=1&b=\"2\">)"), "{md}");
    }

    /// CommonMark's blocks, as a parser sees them: a line that starts one.
    fn block_starts(md: &str) -> Vec<String> {
        md.split(['\r', '\n'])
            .map(str::trim_start)
            .filter(|l| {
                l.starts_with('#')
                    || l.starts_with("---")
                    || l.starts_with("1. ")
                    || l.starts_with("<img")
            })
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_carriage_return_starts_no_block() {
        // Issue 24, finding 6: "Rapport\r# FORGED § 99\r1. X\r---" made a
        // heading, a list and a rule.
        for forged in [
            "Rapport\r# FORGED § 99\r1. X\r---",
            "Rapport\r\n# FORGED § 99\r\n1. X\r\n---",
        ] {
            let mut p = testdata::small();
            p.agenda[1].content = vec![Block::Paragraph {
                content: vec![Inline::Text {
                    text: forged.into(),
                    marks: vec![],
                }],
            }];
            let md = render(Rendition {
                protocol: &p,
                hash: "abc",
                verification: None,
            });
            let blocks = block_starts(&md);
            assert!(
                !blocks.iter().any(|b| b.contains("FORGED") || b == "1. X"),
                "{blocks:?}"
            );
            assert!(!md.contains('\r'), "no carriage return reaches the file");
            assert!(md.contains("\\# FORGED § 99"), "{md}");
            assert!(md.contains("\\---"), "{md}");
        }
    }

    #[test]
    fn the_lockers_name_stays_out_of_code_spans() {
        // Issue 24, finding 6: a backtick in the locker's name closed the
        // code span of the seal line and let raw HTML through.
        let mut p = testdata::small();
        p.locked_by = "Eve` <img src=x onerror=alert(1)> `".into();
        let md = render(Rendition {
            protocol: &p,
            hash: "abc",
            verification: None,
        });
        let sealed = md
            .lines()
            .find(|l| l.starts_with("Låst:"))
            .expect("the seal names who locked");
        assert!(sealed.contains("Eve\\` \\<img"), "{sealed}");
        assert!(!md.replace("\\<", "").contains("<img"), "{md}");
        assert!(md.contains("`abc`"), "the hash is still code");
        assert_eq!(code_span("a`b"), "`` a`b ``");
    }

    #[test]
    fn link_destinations_cannot_be_closed_early() {
        assert_eq!(link_target("https://a.se/\\"), "https://a.se/%5C");
        assert_eq!(link_target("https://a.se/>x"), "https://a.se/%3Ex");
    }

    #[test]
    fn names_the_hash() {
        let p = testdata::small();
        let md = render(Rendition {
            protocol: &p,
            hash: "0123abcd",
            verification: None,
        });
        assert!(md.contains("`0123abcd`"));
        assert!(md.contains("### § 2.1 Polis"));
    }
}
