//! The protocol as one self-contained, print-friendly HTML page: no
//! scripts, no external resources, styles inline. Every piece of user text
//! goes through [`escape`]; link targets were restricted to http, https and
//! mailto when the canonical form was made, and are escaped here too.

use std::fmt::Write;

use crate::model::{Block, Inline, Item, Mark, Protocol, Rendition, display_time, role_label};
use crate::text;

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the page may do, also when opened from disk, where no server's
/// header applies: nothing but its own inline style. The server sends the
/// same policy with the file.
pub const EXPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
    base-uri 'none'; form-action 'none'";

const STYLE: &str = r#"
:root { color-scheme: light; }
body { margin: 0; background: #eef0f3; color: #1b1f24;
  font: 11.5pt/1.5 "Libertinus Serif", "Linux Libertine", Georgia, "Times New Roman", serif; }
main { max-width: 46rem; margin: 2rem auto; background: #fff; padding: 3rem 3.5rem;
  box-shadow: 0 1px 4px rgba(0,0,0,.12); }
header.protocol { border-bottom: 2px solid #1b1f24; padding-bottom: 1rem; margin-bottom: 1.5rem; }
.body-name { font-variant: small-caps; letter-spacing: .04em; margin: 0; font-size: 1.05rem; }
h1 { font-size: 1.7rem; margin: .2rem 0 .8rem; font-weight: 600; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1.2rem; margin: 0; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .4rem; font-weight: 600; }
h3 { font-size: 1.05rem; margin: 1.1rem 0 .3rem; font-weight: 600; }
.item .number { display: inline-block; min-width: 3.2rem; }
.item .owner { color: #5a6270; font-size: .9rem; margin: -.2rem 0 .4rem; }
dl.people { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1.5rem; margin: .3rem 0 1rem; }
dl.people dt { grid-column: 1; font-weight: 600; }
dl.people dd { grid-column: 2; margin: 0; }
.signatures { display: grid; grid-template-columns: 1fr 1fr; gap: 1.5rem 2.5rem; margin-top: 2.2rem; }
.signature .line { border-top: 1px solid #1b1f24; margin-top: 2.2rem; padding-top: .2rem; }
.signature .role { color: #5a6270; font-size: .9rem; }
.signed { color: #1d5e2c; font-size: .9rem; }
footer.seal { margin-top: 2.5rem; border-top: 1px solid #c6cbd3; padding-top: .8rem;
  font-size: .85rem; color: #3a414b; }
footer.seal code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .8rem;
  word-break: break-all; }
.state { display: inline-block; border: 1px solid currentColor; border-radius: 3px;
  padding: 0 .4rem; font-size: .85rem; }
.state.locked { color: #8a5a00; }
.state.verified { color: #1d5e2c; }
@media print {
  body { background: #fff; }
  main { box-shadow: none; margin: 0; max-width: none; padding: 0; }
  @page { size: A4; margin: 22mm 20mm; }
  h2, h3 { break-after: avoid; }
  .signatures { break-inside: avoid; }
}
"#;

/// The whole page.
pub fn render(r: Rendition<'_>) -> String {
    let p = r.protocol;
    let mut out = String::new();
    let title = escape(&p.meeting.title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"sv\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{EXPORT_CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"protokoll-hash\" content=\"{hash}\">\n\
         <title>Protokoll: {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
        hash = escape(r.hash),
    );
    out.push_str("<header class=\"protocol\">\n");
    if !p.meeting.body.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"body-name\">{}</p>",
            escape(&p.meeting.body)
        );
    }
    let _ = writeln!(out, "<h1>Protokoll: {title}</h1>");
    out.push_str("<dl class=\"facts\">\n");
    for (label, value) in text::facts(p) {
        let _ = writeln!(out, "<dt>{label}</dt><dd>{}</dd>", escape(&value));
    }
    let state = if r.verification.is_some() {
        "<span class=\"state verified\">Justerat</span>"
    } else {
        "<span class=\"state locked\">Låst för justering</span>"
    };
    let _ = writeln!(out, "<dt>Status</dt><dd>{state}</dd>");
    out.push_str("</dl>\n</header>\n");

    out.push_str("<section class=\"attendance\">\n<h2>Närvarande</h2>\n");
    attendance(&mut out, p);
    out.push_str("</section>\n");

    for item in &p.agenda {
        render_item(&mut out, item);
    }

    signatures(&mut out, r);
    seal(&mut out, r);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

fn attendance(out: &mut String, p: &Protocol) {
    out.push_str("<dl class=\"people\">\n");
    for (agency, people) in text::attendance(p) {
        let _ = writeln!(out, "<dt>{}</dt>", escape(&agency));
        for person in people {
            let _ = writeln!(out, "<dd>{}</dd>", escape(&person));
        }
    }
    out.push_str("</dl>\n");
}

fn render_item(out: &mut String, item: &Item) {
    let level = if item.number.contains('.') { 3 } else { 2 };
    let _ = writeln!(
        out,
        "<section class=\"item\" id=\"s-{id}\">\n<h{level}><span class=\"number\">§&nbsp;{number}</span> {title}</h{level}>",
        id = escape(&item.id),
        number = escape(&item.number),
        title = escape(&item.title),
    );
    if let Some(owner) = text::owner_line(item) {
        let _ = writeln!(out, "<p class=\"owner\">{}</p>", escape(&owner));
    }
    blocks(out, &item.content);
    out.push_str("</section>\n");
}

fn blocks(out: &mut String, blocks_: &[Block]) {
    for block in blocks_ {
        match block {
            Block::Paragraph { content } => {
                out.push_str("<p>");
                inlines(out, content);
                out.push_str("</p>\n");
            }
            Block::Heading { level, content } => {
                // Headings inside an item sit below the item's own heading.
                let level = (*level).clamp(1, 3) + 3;
                let _ = write!(out, "<h{level}>");
                inlines(out, content);
                let _ = writeln!(out, "</h{level}>");
            }
            Block::BulletList { content } => {
                out.push_str("<ul>\n");
                for item in content {
                    out.push_str("<li>");
                    self::blocks(out, &item.content);
                    out.push_str("</li>\n");
                }
                out.push_str("</ul>\n");
            }
            Block::OrderedList { start, content } => {
                if *start == 1 {
                    out.push_str("<ol>\n");
                } else {
                    let _ = writeln!(out, "<ol start=\"{start}\">");
                }
                for item in content {
                    out.push_str("<li>");
                    self::blocks(out, &item.content);
                    out.push_str("</li>\n");
                }
                out.push_str("</ol>\n");
            }
        }
    }
}

fn inlines(out: &mut String, content: &[Inline]) {
    for inline in content {
        match inline {
            Inline::HardBreak => out.push_str("<br>"),
            Inline::Text { text, marks } => {
                let mut close = Vec::new();
                for mark in marks {
                    match mark {
                        Mark::Bold => {
                            out.push_str("<strong>");
                            close.push("</strong>");
                        }
                        Mark::Italic => {
                            out.push_str("<em>");
                            close.push("</em>");
                        }
                        Mark::Link { href } => {
                            // Only the target is kept from a link; how it
                            // opens is ours to say.
                            let _ = write!(
                                out,
                                "<a href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer\">",
                                escape(href)
                            );
                            close.push("</a>");
                        }
                    }
                }
                out.push_str(&escape(text));
                for tag in close.into_iter().rev() {
                    out.push_str(tag);
                }
            }
        }
    }
}

fn signatures(out: &mut String, r: Rendition<'_>) {
    let p = r.protocol;
    out.push_str("<section class=\"signatures\" aria-label=\"Underskrifter\">\n");
    for secretary in &p.secretaries {
        let _ = writeln!(
            out,
            "<div class=\"signature\"><div class=\"caption\">Vid protokollet</div>\
             <div class=\"line\">{}</div><div class=\"role\">Sekreterare</div></div>",
            escape(&secretary.name)
        );
    }
    for verifier in &p.verifiers {
        let signed = r.verification.and_then(|v| {
            v.signoffs
                .iter()
                .find(|s| s.name == verifier.name && s.role == verifier.role)
        });
        let status = match signed {
            Some(s) => format!(
                "<div class=\"signed\">Justerat elektroniskt {}</div>",
                escape(&display_time(&s.at))
            ),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "<div class=\"signature\"><div class=\"caption\">Justeras</div>\
             <div class=\"line\">{}</div><div class=\"role\">{}</div>{status}</div>",
            escape(&verifier.name),
            escape(role_label(&verifier.role)),
        );
    }
    out.push_str("</section>\n");
}

fn seal(out: &mut String, r: Rendition<'_>) {
    out.push_str("<footer class=\"seal\">\n");
    for line in text::seal_lines(r) {
        let (open, close) = if line.verbatim {
            ("<code>", "</code>")
        } else {
            ("", "")
        };
        let _ = writeln!(
            out,
            "<p>{}: {open}{}{close}</p>",
            escape(&line.label),
            escape(&line.value)
        );
    }
    out.push_str("</footer>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn user_text_cannot_inject_markup() {
        let p = testdata::hostile();
        let html = render(Rendition {
            protocol: &p,
            hash: "abc",
            verification: None,
        });
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("href=\"https://example.se/?a=1&amp;b=&quot;2&quot;\""));
    }

    #[test]
    fn links_open_without_handing_over_the_page() {
        let p = testdata::hostile();
        let html = render(Rendition {
            protocol: &p,
            hash: "abc",
            verification: None,
        });
        for anchor in html.split("<a ").skip(1) {
            let tag = &anchor[..anchor.find('>').unwrap()];
            assert!(
                tag.ends_with("target=\"_blank\" rel=\"noopener noreferrer\""),
                "{tag}"
            );
        }
        assert!(html.contains("<meta http-equiv=\"Content-Security-Policy\""));
    }

    #[test]
    fn names_in_the_seal_are_text() {
        let mut p = testdata::small();
        p.locked_by = "<b>Eve</b>".into();
        let html = render(Rendition {
            protocol: &p,
            hash: "abc",
            verification: None,
        });
        assert!(
            html.contains("av &lt;b&gt;Eve&lt;/b&gt; (version 1)</p>"),
            "{html}"
        );
        assert!(html.contains("<code>abc</code>"));
    }

    #[test]
    fn names_the_hash_and_state() {
        let p = testdata::small();
        let html = render(Rendition {
            protocol: &p,
            hash: "0123abcd",
            verification: None,
        });
        assert!(html.contains("0123abcd"));
        assert!(html.contains("Låst för justering"));
        assert!(html.contains("§&nbsp;2.1</span> Polis"));
    }
}
