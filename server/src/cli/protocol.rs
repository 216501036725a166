//! `protokoll meeting lock|reopen|signoff|reject|status|audit|export|verify`:
//! the protocol's lifecycle, acting as a named user through
//! `finalise::Lifecycle`, which decides who may do what for the API and the
//! command line alike.

use anyhow::{Context, bail};
use protokoll::{
    finalise::{Actor, Format, Lifecycle, SignerSlot},
    meeting::MeetingId,
    store::Database,
};

use super::{
    find_user,
    meetings::{Acting, MeetingCommand},
};

async fn actor(db: &Database, acting: &Acting) -> anyhow::Result<(MeetingId, Actor)> {
    let meeting: MeetingId = acting.meeting.parse()?;
    let user = find_user(db, &acting.user).await?;
    let role = db.dir.role(meeting, user.id).await?;
    if role.is_none() && !user.is_admin {
        bail!("{} is not a participant of meeting {meeting}", acting.user);
    }
    Ok((
        meeting,
        Actor {
            user,
            role,
            via: "cli",
            signed_in_with: protokoll::auth::SignIn::command_line(),
        },
    ))
}

pub async fn run(
    db: &Database,
    command: MeetingCommand,
    key_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    // Loaded only if a sign-off completes a justering: reading commands
    // never create or record a signing key.
    let signer = SignerSlot::lazy(db.clone(), key_file.map(std::path::Path::to_path_buf));
    let lifecycle = Lifecycle {
        db,
        signer: &signer,
        rooms: None,
    };
    let print_state = |view: &protokoll::finalise::ProtocolView| {
        match &view.locked {
            Some(locked) => println!("{}\t{}", view.state, locked.hash),
            None => println!("{}", view.state),
        };
    };
    match command {
        MeetingCommand::Lock(acting) => {
            let (meeting, actor) = actor(db, &acting).await?;
            print_state(&lifecycle.lock(meeting, &actor).await?);
        }
        MeetingCommand::Reopen(acting) => {
            let (meeting, actor) = actor(db, &acting).await?;
            print_state(&lifecycle.reopen(meeting, &actor).await?);
        }
        MeetingCommand::Signoff { acting, hash } => {
            let (meeting, actor) = actor(db, &acting).await?;
            print_state(&lifecycle.signoff(meeting, &actor, hash.trim()).await?);
        }
        MeetingCommand::Reject {
            acting,
            hash,
            reason,
        } => {
            let (meeting, actor) = actor(db, &acting).await?;
            print_state(
                &lifecycle
                    .reject(meeting, &actor, hash.trim(), &reason)
                    .await?,
            );
        }
        MeetingCommand::Status { meeting } => {
            let view = lifecycle.view(meeting.parse()?).await?;
            println!("{}", serde_json::to_string_pretty(&view)?);
        }
        MeetingCommand::Audit { meeting } => {
            for e in db.protocols.audit(meeting.parse()?).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    protokoll::finalise::rfc3339(e.at),
                    e.action,
                    e.actor_name,
                    e.via,
                    e.hash.unwrap_or_default(),
                    e.reason.unwrap_or_default().replace('\n', " ")
                );
            }
        }
        MeetingCommand::Export {
            meeting,
            format,
            output,
        } => {
            let format = Format::parse(&format).context("a format is html, md, pdf or json")?;
            let export = lifecycle.export(meeting.parse()?, format).await?;
            match output {
                Some(path) => {
                    std::fs::write(&path, &export.bytes)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!(
                        "{} ({} bytes, sha256 {})",
                        path.display(),
                        export.bytes.len(),
                        export.sha256
                    );
                }
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&export.bytes)?;
                }
            }
        }
        MeetingCommand::Verify { file, hash } => {
            let report = match (file, hash) {
                (Some(path), None) => {
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    lifecycle.verify_file(&bytes).await?
                }
                (None, Some(hash)) => lifecycle.verify_hash(&hash).await?,
                _ => bail!("give a file or --hash, not both"),
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.matches {
                std::process::exit(1);
            }
        }
        MeetingCommand::List | MeetingCommand::Create(_) => unreachable!("handled in meetings"),
    }
    Ok(())
}
