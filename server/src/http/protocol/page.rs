//! The verification page (`/verify`, no JavaScript): the form, its
//! stylesheet and the answer as a page in Swedish.

use axum::{
    extract::{Query, Request, State},
    http::{HeaderValue, header},
    response::{Html, IntoResponse, Response},
};
use protokoll_render::{html::escape, model::display_time};
use serde::Deserialize;

use super::verify::{Presented, check, presented, refused};
use crate::{
    finalise::{VerifyReport, VerifyStatus},
    http::{AppState, client::ClientIp, error::ApiError},
};

/// The verification page's stylesheet: the browser app's look (its colours,
/// type and top bar), served as a file because the Content-Security-Policy
/// allows no inline style.
pub const PAGE_STYLE: &str = ":root{--ink:#1b1f24;--muted:#4a5260;--line:#c9ced6;--accent:#1f4e8c;\
--danger:#a3262a;--ok:#1d6b35;--focus:#1a4fa0}*{box-sizing:border-box}\
body{margin:0;background:#eceef2;color:var(--ink);font:1rem/1.5 system-ui,-apple-system,'Segoe UI',Roboto,\
'Liberation Sans','DejaVu Sans',sans-serif}a{color:var(--accent)}:focus-visible{outline:3px solid var(--focus);\
outline-offset:2px}.app-bar{display:flex;align-items:center;justify-content:space-between;gap:1rem;\
padding:.6rem 1.5rem;background:#17345c;color:#fff}.app-bar a{color:#fff}.app-bar .brand{font-weight:700;\
font-size:1.15rem;letter-spacing:.02em;text-decoration:none}main{display:block;max-width:46rem;margin:2rem auto;\
background:#fff;padding:2rem 2.5rem;border:1px solid var(--line);border-radius:6px}h1{margin-top:0;line-height:1.25}\
label{display:block;font-weight:600;margin:1rem 0 .3rem}input{font:inherit;color:inherit}\
input[type=text]{width:100%;padding:.4rem .5rem;border:1px solid #767f8c;border-radius:4px}\
button{margin-top:1.2rem;font:inherit;padding:.45rem 1.2rem;border:1px solid var(--accent);border-radius:4px;\
background:var(--accent);color:#fff;cursor:pointer}button:hover{background:#173d6f}\
.hint{color:var(--muted);font-size:.9rem;margin:.2rem 0}\
.ok{border-left:6px solid var(--ok);padding:.6rem 1rem;background:#e9f5ec;border-radius:0 4px 4px 0}\
.bad{border-left:6px solid var(--danger);padding:.6rem 1rem;background:#fdf0f0;border-radius:0 4px 4px 0}\
.warn{border-left:6px solid #8a5a00;padding:.6rem 1rem;background:#fdf5e6;border-radius:0 4px 4px 0}\
.ok p,.bad p,.warn p{margin:.2rem 0}code{font-family:ui-monospace,'DejaVu Sans Mono','Liberation Mono',monospace;\
font-size:.9rem;word-break:break-all;background:#f3f5f8;padding:.05rem .3rem;border-radius:3px}\
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.35rem 1.25rem;margin:1.25rem 0}\
dt{font-weight:600}dd{margin:0}.valid{color:var(--ok);font-weight:600}.invalid{color:var(--danger);font-weight:700}\
@media (max-width:600px){main{margin:0;border-radius:0;padding:1.25rem}dl{grid-template-columns:1fr}dd{margin-bottom:.4rem}}";

/// `GET /verify.css`: the verification page's stylesheet.
pub async fn verify_style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        PAGE_STYLE,
    )
        .into_response()
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html lang=\"sv\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} – Protokoll</title><link rel=\"stylesheet\" href=\"/verify.css\"></head>\
         <body><header class=\"app-bar\"><a class=\"brand\" href=\"/\">Protokoll</a>\
         <a href=\"/verify\">Kontrollera ett protokoll</a></header>\
         <main id=\"main\">{body}</main></body></html>"
    ))
}

const FORM: &str = "<h1>Kontrollera ett protokoll</h1>\
<p>Ladda upp en protokollfil (PDF, HTML, Markdown eller JSON) som du har fått från den här \
servern, eller ange protokollets kontrollsumma. Du får veta om filen är oförändrad, vilket \
sammanträde den gäller, om protokollet är justerat och om serverns underskrift stämmer.</p>\
<form method=\"post\" action=\"/verify\" enctype=\"multipart/form-data\">\
<label for=\"file\">Protokollfil</label><input id=\"file\" name=\"file\" type=\"file\">\
<label for=\"hash\">eller kontrollsumma (SHA-256)</label>\
<input id=\"hash\" name=\"hash\" type=\"text\" autocomplete=\"off\" spellcheck=\"false\" \
aria-describedby=\"hash-hint\"><p id=\"hash-hint\" class=\"hint\">64 tecken, 0–9 och a–f. Den står i protokollets \
sidfot och i appen.</p>\
<button type=\"submit\">Kontrollera</button></form>";

#[derive(Deserialize)]
pub struct HashQuery {
    hash: Option<String>,
}

/// `GET /verify`: the form (and, with `?hash=`, the answer).
pub async fn verify_page(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(query): Query<HashQuery>,
) -> Response {
    match query.hash.filter(|h| !h.trim().is_empty()) {
        Some(hash) => {
            let report = match app.verify_gate.ask(ip, std::time::Instant::now()) {
                Ok(()) => check(&app, Presented::Hash(hash)).await,
                Err(refusal) => Err(refused(refusal)),
            };
            result_page(report)
        }
        None => page("Kontrollera ett protokoll", FORM).into_response(),
    }
}

/// `POST /verify`: the form's answer.
pub async fn verify_form(State(app): State<AppState>, ip: ClientIp, request: Request) -> Response {
    let report = match presented(&app, ip, request).await {
        Ok(p) => check(&app, p).await,
        Err(e) => Err(e),
    };
    result_page(report)
}

/// The answer as a page: 200 with the verdict or with what to correct in
/// the form; a limit's status (413, 408, 429, 503 with `Retry-After`) with
/// what to do.
fn result_page(report: Result<VerifyReport, ApiError>) -> Response {
    let title = match &report {
        Ok(r) => match r.status {
            VerifyStatus::Genuine => "Stämmer",
            VerifyStatus::Withdrawn => "Äkta men återkallat",
            VerifyStatus::NoMatch => "Stämmer inte",
        },
        Err(_) => "Kontrollera ett protokoll",
    };
    let (status, retry) = match &report {
        Err(
            e @ (ApiError::TooLarge(_)
            | ApiError::BodyTimeout
            | ApiError::Throttled(..)
            | ApiError::Busy(..)),
        ) => (e.status(), e.retry_after()),
        _ => (axum::http::StatusCode::OK, None),
    };
    let mut response = (status, page(title, &result_html(report))).into_response();
    if let Some(retry) = retry {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry));
    }
    response
}

fn role_sv(role: &str) -> &str {
    protokoll_render::model::role_label(role)
}

/// Who signed off, in Swedish: the account, how it signed in, who vouched
/// for it.
fn signer_sv(by: &crate::finalise::SignedBy) -> String {
    let mut out = format!("konto {}", by.username);
    if let Some(agency) = &by.agency {
        out.push_str(&format!(" ({agency})"));
    }
    out.push_str(match by.signed_in_with.method.as_str() {
        "password" => ", inloggad med lösenord",
        "api_token" => ", inloggad med API-nyckel",
        "command_line" => ", via kommandoraden (en driftansvarig agerade för kontot)",
        _ => "",
    });
    if !matches!(
        by.signed_in_with.method.as_str(),
        "password" | "api_token" | "command_line"
    ) {
        out.push_str(&format!(", inloggad med {}", by.signed_in_with.method));
        for (k, v) in &by.signed_in_with.details {
            out.push_str(&format!(" {k}={v}"));
        }
    }
    match &by.vouched_by {
        Some(v) => match (&v.by, v.via.as_str()) {
            (Some(admin), _) => out.push_str(&format!(
                "; identiteten intygad av administratören {} ({})",
                admin.display_name, admin.username
            )),
            (None, "cli") => {
                out.push_str("; identiteten intygad av en driftansvarig (kommandoraden)")
            }
            (None, "demo") => out.push_str("; demokonto"),
            (None, _) => out.push_str("; kontot skapades av en administratör"),
        },
        None => out.push_str("; ingen har intygat kontots identitet"),
    }
    out
}

fn result_html(report: Result<VerifyReport, ApiError>) -> String {
    let mut out = String::new();
    match report {
        Err(e) => {
            let said = match e {
                ApiError::Invalid(_) | ApiError::Malformed(_) => {
                    "Välj en protokollfil, eller ange en kontrollsumma: 64 tecken, 0–9 och a–f."
                }
                ApiError::TooLarge(_) => "Filen är för stor: en protokollfil är högst 32 MiB.",
                ApiError::Throttled(..) => {
                    "Du har kontrollerat många filer på kort tid. Vänta en stund och försök igen."
                }
                ApiError::BodyTimeout => "Filen kom inte fram i tid. Försök igen.",
                _ => "Något gick fel. Försök igen om en stund.",
            };
            out.push_str(&format!(
                "<h1>Kontrollera ett protokoll</h1><div class=\"bad\" role=\"alert\"><p>{said}</p>\
                 <p lang=\"en\">{}</p></div>",
                escape(&e.to_string())
            ));
        }
        Ok(r) if r.status == VerifyStatus::NoMatch => {
            out.push_str(
                "<h1>Stämmer inte</h1><div class=\"bad\" role=\"alert\"><p><strong>Filen eller \
                 kontrollsumman stämmer inte</strong> med något låst protokoll på den här \
                 servern. Filen kan ha ändrats, eller kommer den från en annan server.</p>\
                 <p lang=\"en\">Does not match.</p></div>",
            );
        }
        Ok(r) => {
            let Some(p) = r.protocol else {
                return String::new();
            };
            let state = match p.state.as_str() {
                "verified" => "Justerat",
                "locked" => "Låst, väntar på justering",
                _ => "Återkallat (skickat tillbaka till utkast)",
            };
            let genuine = if r.matched == Some("export") {
                "Filen är oförändrad: den är en export av ett protokoll på den här servern."
            } else {
                "Kontrollsumman tillhör ett låst protokoll på den här servern."
            };
            if r.status == VerifyStatus::Withdrawn {
                // Genuine, but not the protocol: a justerare rejected this
                // version, or the secretary took it back, before it was
                // verified. Never the green "Stämmer".
                out.push_str(&format!(
                    "<h1>Äkta men återkallat</h1><div class=\"warn\" role=\"alert\">\
                     <p><strong>{genuine}</strong></p><p>Men den här versionen av protokollet \
                     är <strong>återkallad</strong>: den skickades tillbaka till utkast och \
                     gäller inte. Fråga sekreteraren efter den senaste versionen.</p>\
                     <p lang=\"en\">Genuine, but withdrawn: this version of the protocol was \
                     sent back to draft and is not in force. Ask the secretary for the latest \
                     version.</p></div><dl>"
                ));
            } else {
                out.push_str(&format!(
                    "<h1>Stämmer</h1><div class=\"ok\" role=\"status\"><p><strong>{genuine}</strong></p>\
                     <p lang=\"en\">Genuine.</p></div><dl>"
                ));
            }
            let mut row = |k: &str, v: String| out.push_str(&format!("<dt>{k}</dt><dd>{v}</dd>"));
            row("Sammanträde", escape(&p.meeting_title));
            if !p.meeting_body.is_empty() {
                row("Organ", escape(&p.meeting_body));
            }
            if let Some(d) = &p.meeting_date {
                row("Datum", escape(d));
            }
            row("Status", state.to_owned());
            row("Version", p.version.to_string());
            row("Låst", escape(&display_time(&p.locked_at)));
            if let (Some(f), Some(s)) = (&r.format, &r.stage) {
                row(
                    "Fil",
                    format!(
                        "{} ({})",
                        escape(f),
                        if s == "verified" { "justerad" } else { "låst" }
                    ),
                );
            }
            row("Kontrollsumma", format!("<code>{}</code>", escape(&p.hash)));
            for v in &p.required {
                let signed = match &v.signed_at {
                    Some(at) => format!("justerat {}", escape(&display_time(at))),
                    None => "har inte justerat".into(),
                };
                let account = v
                    .signed_by
                    .as_ref()
                    .map(|by| format!("<br><span class=\"hint\">{}</span>", escape(&signer_sv(by))))
                    .unwrap_or_default();
                row(
                    role_sv(&v.role),
                    format!("{}: {signed}{account}", escape(&v.name)),
                );
            }
            match &p.signature {
                Some(s) if s.valid => row(
                    "Underskrift",
                    format!(
                        "<span class=\"valid\">giltig</span> (Ed25519, nyckel <code>{}</code>{})",
                        escape(&s.signature.key_id),
                        match (s.key_status.as_str(), &s.key_retired_at) {
                            ("retired", Some(at)) => format!(
                                "; nyckeln avvecklades {}: den var i bruk när protokollet \
                                 justerades och undertecknar inget nytt",
                                escape(&display_time(at))
                            ),
                            ("in_use", _) => String::new(),
                            _ => "; nyckeln är inte längre i bruk".to_owned(),
                        }
                    ),
                ),
                Some(_) => row(
                    "Underskrift",
                    "<span class=\"invalid\">ogiltig</span>".into(),
                ),
                None => row(
                    "Underskrift",
                    "ingen ännu (protokollet är inte justerat)".into(),
                ),
            }
            out.push_str("</dl>");
        }
    }
    out.push_str("<p><a href=\"/verify\">Kontrollera en annan fil</a></p>");
    out
}
