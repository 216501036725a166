//! Meetings (document names), API tokens and connection URLs.

use std::{path::Path, sync::Arc};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};

/// Creates `n` meetings through `POST {base}/api/meetings` and returns their
/// ids, or, without a base URL, `n` random UUIDs (for servers that create
/// documents on first connect, like y-websocket's and Hocuspocus').
pub async fn meetings(n: usize, via: Option<&str>, label: &str) -> anyhow::Result<Vec<String>> {
    let Some(base) = via else {
        return Ok((0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect());
    };
    // Our server wants a signed-in creator; the creator becomes each
    // meeting's secretary, so the same token may then open the documents.
    let api = Api::new(base, std::env::var("PROTOKOLL_TOKEN").ok())?;
    let api = &api;
    futures::stream::iter(0..n)
        .map(|i| async move { api.create_meeting(&format!("loadgen {label} {i}")).await })
        .buffered(16)
        .try_collect()
        .await
}

/// Signs connections in as agency users writing their own sections, the way
/// a council uses our server: one agency per section, with one user and API
/// token each, plus a reader (a member without an agency) for the clients
/// that only watch. Needs an admin's token in `PROTOKOLL_TOKEN`.
pub struct Agencies {
    sections: Vec<Provisioned>,
    reader: Provisioned,
}

struct Provisioned {
    section: String,
    agency_id: Option<String>,
    user_id: String,
    token: String,
}

impl Agencies {
    /// Creates the agencies, users and tokens on the server at `base`.
    pub async fn provision(base: &str, sections: &[String]) -> anyhow::Result<Self> {
        let api = Api::admin(base)?;
        // Names are unique per run, so runs can share one database.
        let run = format!("{:08x}", rand::random::<u32>());
        let mut provisioned = Vec::with_capacity(sections.len());
        for section in sections {
            let agency = api
                .post(
                    "/api/admin/agencies",
                    serde_json::json!({ "name": format!("Loadgen {run} {section}") }),
                )
                .await?;
            let agency_id = string_field(&agency, "id")?;
            let (user_id, token) = api
                .user(&format!("lg-{run}-{section}"), Some(&agency_id))
                .await?;
            provisioned.push(Provisioned {
                section: section.clone(),
                agency_id: Some(agency_id),
                user_id,
                token,
            });
        }
        let (user_id, token) = api.user(&format!("lg-{run}-reader"), None).await?;
        let reader = Provisioned {
            section: String::new(),
            agency_id: None,
            user_id,
            token,
        };
        eprintln!(
            "signed in as {} agency users (sections {}) and a reader",
            provisioned.len(),
            sections.join(", ")
        );
        Ok(Agencies {
            sections: provisioned,
            reader,
        })
    }

    /// Creates `n` meetings, each with one section per agency (owned by it)
    /// and every provisioned user as a member.
    pub async fn meetings(&self, base: &str, n: usize, label: &str) -> anyhow::Result<Vec<String>> {
        let api = Api::admin(base)?;
        let api = &api;
        futures::stream::iter(0..n)
            .map(|i| async move {
                let id = api.create_meeting(&format!("loadgen {label} {i}")).await?;
                for s in &self.sections {
                    api.post(
                        &format!("/api/meetings/{id}/agenda"),
                        serde_json::json!({
                            "id": s.section,
                            "title": format!("Byrå {}", s.section),
                            "owner": { "kind": "agency", "agency_id": s.agency_id },
                        }),
                    )
                    .await?;
                }
                for p in self.sections.iter().chain([&self.reader]) {
                    api.put(
                        &format!("/api/meetings/{id}/participants/{}", p.user_id),
                        serde_json::json!({ "role": "member" }),
                    )
                    .await?;
                }
                anyhow::Ok(id)
            })
            .buffered(16)
            .try_collect()
            .await
    }

    /// The credentials of one meeting's clients, in order: the section
    /// owners first (the writers), then readers for the rest.
    pub fn tokens(&self, clients_per_meeting: usize) -> Tokens {
        let creds = (0..clients_per_meeting.max(1))
            .map(|k| match self.sections.get(k) {
                Some(p) => Credential {
                    token: p.token.clone(),
                    section: Some(p.section.clone()),
                },
                None => Credential {
                    token: self.reader.token.clone(),
                    section: None,
                },
            })
            .collect();
        Tokens {
            creds: Arc::new(creds),
        }
    }
}

/// JSON requests to our server's API with the admin token.
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    /// With `token`, every request carries it as a bearer token.
    fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}")
                    .parse()
                    .context("PROTOKOLL_TOKEN")?,
            );
        }
        Ok(Api {
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .default_headers(headers)
                .build()?,
        })
    }

    /// Signed in with the admin token `PROTOKOLL_TOKEN`.
    fn admin(base: &str) -> anyhow::Result<Self> {
        let token = std::env::var("PROTOKOLL_TOKEN")
            .context("signing in as agencies needs an admin API token in PROTOKOLL_TOKEN")?;
        Self::new(base, Some(token))
    }

    /// Creates a meeting (the caller becomes its secretary); returns its id.
    async fn create_meeting(&self, title: &str) -> anyhow::Result<String> {
        let meeting = self
            .post("/api/meetings", serde_json::json!({ "title": title }))
            .await?;
        string_field(&meeting, "id")
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        self.send(self.client.post(format!("{}{path}", self.base)), path, body)
            .await
    }

    async fn put(&self, path: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        self.send(self.client.put(format!("{}{path}", self.base)), path, body)
            .await
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let resp = req
            .json(&body)
            .send()
            .await
            .with_context(|| format!("{}{path}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{path}: {status}: {text}");
        }
        if text.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{path}: response is not JSON"))
    }

    /// Creates a user with a random password and issues an API token.
    async fn user(&self, username: &str, agency: Option<&str>) -> anyhow::Result<(String, String)> {
        let password: String = {
            use rand::Rng;
            rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(24)
                .map(char::from)
                .collect()
        };
        let user = self
            .post(
                "/api/admin/users",
                serde_json::json!({
                    "username": username,
                    "display_name": username,
                    "agency_id": agency,
                    "password": password,
                }),
            )
            .await?;
        let user_id = string_field(&user, "id")?;
        let issued = self
            .post(
                &format!("/api/admin/users/{user_id}/tokens"),
                serde_json::json!({ "name": "loadgen" }),
            )
            .await?;
        Ok((user_id, string_field(&issued, "secret")?))
    }
}

fn string_field(v: &serde_json::Value, field: &str) -> anyhow::Result<String> {
    v.get(field)
        .and_then(|x| x.as_str())
        .map(str::to_owned)
        .with_context(|| format!("response has no string {field:?}: {v}"))
}

/// One line of a token file: an API token, optionally followed by the id of
/// the section its user owns (`TOKEN` or `TOKEN SECTION_ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub token: String,
    pub section: Option<String>,
}

/// Hands out the next credential to each new connection, round-robin.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    creds: Arc<Vec<Credential>>,
}

impl Tokens {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading token file {}", path.display()))?;
        let tokens = Self::parse(&text);
        if tokens.creds.is_empty() {
            bail!("token file {} has no tokens", path.display());
        }
        Ok(tokens)
    }

    pub fn parse(text: &str) -> Self {
        let creds = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let mut parts = l.split_whitespace();
                Credential {
                    token: parts.next().unwrap_or_default().to_owned(),
                    section: parts.next().map(str::to_owned),
                }
            })
            .collect();
        Tokens {
            creds: Arc::new(creds),
        }
    }

    pub fn len(&self) -> usize {
        self.creds.len()
    }

    /// The credential for the `i`-th connection.
    pub fn get(&self, i: usize) -> Option<&Credential> {
        if self.creds.is_empty() {
            None
        } else {
            Some(&self.creds[i % self.creds.len()])
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL to open for one connection. y-websocket: `{base}/{doc}`, plus
/// `?token=` when there is one. Hocuspocus: the base URL as given (the
/// document name travels in every message, the token in the auth message).
pub fn connect_url(
    protocol: crate::wire::Protocol,
    base: &str,
    doc: &str,
    token: Option<&str>,
) -> String {
    match protocol {
        crate::wire::Protocol::YWebsocket => {
            let mut url = format!("{}/{}", base.trim_end_matches('/'), encode_component(doc));
            if let Some(t) = token {
                url.push_str("?token=");
                url.push_str(&encode_component(t));
            }
            url
        }
        crate::wire::Protocol::Hocuspocus => base.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Protocol;

    #[test]
    fn tokens_are_handed_out_round_robin() {
        let t = Tokens::parse("# agency users\nabc polis\n\ndef\n ghi  socialtjanst \n");
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.get(0),
            Some(&Credential {
                token: "abc".into(),
                section: Some("polis".into())
            })
        );
        assert_eq!(t.get(1).unwrap().section, None);
        assert_eq!(t.get(3).unwrap().token, "abc");
        assert_eq!(t.get(5).unwrap().token, "ghi");
        assert!(Tokens::default().get(0).is_none());
    }

    #[test]
    fn urls() {
        assert_eq!(
            connect_url(Protocol::YWebsocket, "ws://h:1/sync/", "m-1", Some("a b+c")),
            "ws://h:1/sync/m-1?token=a%20b%2Bc"
        );
        assert_eq!(
            connect_url(Protocol::YWebsocket, "ws://h:1/sync", "m", None),
            "ws://h:1/sync/m"
        );
        assert_eq!(
            connect_url(Protocol::Hocuspocus, "ws://h:2", "m", Some("t")),
            "ws://h:2"
        );
    }
}
