//! `protokoll signing-key` and `protokoll cluster`: the keys that sign
//! verified protocols and the keys that authenticate the nodes' messages
//! (listing, retiring, rotating).

use anyhow::{Context, bail};
use clap::Subcommand;
use protokoll::{config::ServerConfig, store::Database};

#[derive(Subcommand)]
pub enum SigningKeyCommand {
    /// List the keys: id, created, status (`in-use`, `retired <time>` or
    /// `not-in-use`) and where the secret is (`database`, `file`, or
    /// `erased` once retired), tab-separated.
    List,
    /// Retire a key: it never signs again, its secret is erased from the
    /// database (a key file is left to you to delete), and what it signed
    /// still verifies (`/verify` says the key was retired). After the key
    /// in use is retired, the next process that signs records its own key
    /// (the server's `--signing-key-file`, created if missing, or a new
    /// key in the database); restart running servers so that they load it.
    Retire { key_id: String },
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Add a cluster key, which nodes sign with from now on, and retire
    /// the keys older than the one they signed with until now (that one
    /// stays accepted until the next rotation). Prints the new key's id.
    /// With --redis-url the nodes are told at once; otherwise they take it
    /// within 30 s.
    RotateKey {
        /// Retire every other key at once (a key that leaked): messages
        /// signed with them are refused from now on.
        #[arg(long)]
        retire_others: bool,
    },
    /// List the cluster keys: id, created, retired (or `-`). Never the
    /// secrets.
    Keys,
}

pub async fn signing(db: &Database, command: SigningKeyCommand) -> anyhow::Result<()> {
    match command {
        SigningKeyCommand::List => {
            for k in db.protocols.signing_keys().await? {
                let status = match (k.retired_at, k.in_use) {
                    (Some(at), _) => format!("retired {}", protokoll::finalise::rfc3339(at)),
                    (None, true) => "in-use".to_owned(),
                    (None, false) => "not-in-use".to_owned(),
                };
                let secret = match (&k.secret_key, k.retired_at) {
                    (Some(_), _) => "database",
                    (None, Some(_)) => "erased",
                    (None, None) => "file",
                };
                println!(
                    "{}\t{}\t{status}\t{secret}",
                    k.key_id,
                    protokoll::finalise::rfc3339(k.created_at)
                );
            }
        }
        SigningKeyCommand::Retire { key_id } => {
            let key_id = key_id.trim();
            if !db.protocols.retire_signing_key(key_id).await? {
                bail!("no signing key {key_id:?} that is not retired already");
            }
            eprintln!(
                "signing key {key_id} retired: it signs no more, what it signed still verifies; \
                 restart running servers so that they record and load a key in use"
            );
        }
    }
    Ok(())
}

pub async fn cluster(
    db: &Database,
    command: ClusterCommand,
    server: &ServerConfig,
) -> anyhow::Result<()> {
    let keys = db
        .dir
        .cluster_keys()
        .context("several nodes need a Postgres database; this one has no cluster keys")?;
    match command {
        ClusterCommand::RotateKey { retire_others } => {
            let before = keys.active().await?;
            let rotation = keys.rotate(retire_others).await?;
            println!("{}", rotation.new);
            eprintln!(
                "cluster key {} added; nodes sign with it from now on{}",
                rotation.new,
                match rotation.previous {
                    Some(previous) =>
                        format!(" (key {previous} stays accepted until the next rotation)"),
                    None => String::new(),
                }
            );
            if !rotation.retired.is_empty() {
                eprintln!("retired: {:?}", rotation.retired);
            }
            if let Some(url) = &server.redis_url {
                // Signed with a key the nodes hold: the one they signed
                // with until now, unless it was just retired.
                let signer = match rotation.previous {
                    Some(previous) => before.into_iter().find(|k| k.id == previous),
                    None => None,
                };
                let signer = match signer {
                    Some(key) => (key.id, key.secret),
                    None => {
                        let newest = keys.active().await?.into_iter().next();
                        let key = newest.context("the new key is not active")?;
                        (key.id, key.secret)
                    }
                };
                let client = protokoll::cluster::redis_client(
                    url.expose(),
                    server.redis_ca_file.as_deref(),
                )?;
                if let Err(e) = protokoll::cluster::announce_keys(&client, signer).await {
                    eprintln!(
                        "warning: could not tell the nodes through Redis ({e}); they read the \
                         keys again within 30 s"
                    );
                }
            }
        }
        ClusterCommand::Keys => {
            let active = keys.active().await?;
            for key in keys.list().await? {
                let retired = key
                    .retired_at
                    .map(|r| r.to_rfc3339())
                    .unwrap_or_else(|| "-".into());
                let signing = if active.first().is_some_and(|a| a.id == key.id) {
                    "\tsigning"
                } else {
                    ""
                };
                println!(
                    "{}\t{}\t{retired}{signing}",
                    key.id,
                    key.created_at.to_rfc3339()
                );
            }
        }
    }
    Ok(())
}
