//! `protokoll agency`: creating and listing agencies.

use clap::Subcommand;
use protokoll::{people::parse_name, store::Database};

#[derive(Subcommand)]
pub enum AgencyCommand {
    /// Create an agency and print its id.
    Create { name: String },
    /// List agencies: id and name, tab-separated.
    List,
}

pub async fn run(db: &Database, command: AgencyCommand) -> anyhow::Result<()> {
    match command {
        AgencyCommand::Create { name } => {
            let agency = db.dir.create_agency(&parse_name(&name)?).await?;
            println!("{}", agency.id);
        }
        AgencyCommand::List => {
            for a in db.dir.list_agencies().await? {
                println!("{}\t{}", a.id, a.name);
            }
        }
    }
    Ok(())
}
