//! Agencies: the organisations whose people write sections.

use chrono::Utc;
use sqlx::Row;

use super::{Directory, conflict};
use crate::{
    people::{Agency, AgencyId},
    store::{
        StoreError,
        pool::{execute, fetch_all},
    },
};

impl Directory {
    pub async fn create_agency(&self, name: &str) -> Result<Agency, StoreError> {
        let agency = Agency {
            id: AgencyId::new(),
            name: name.to_owned(),
        };
        execute!(
            self,
            map_err(conflict),
            "INSERT INTO agencies (id, name, created_at) VALUES ($1, $2, $3)",
            agency.id.0,
            &agency.name,
            Utc::now()
        );
        Ok(agency)
    }

    pub async fn list_agencies(&self) -> Result<Vec<Agency>, StoreError> {
        Ok(fetch_all!(
            self,
            "SELECT id, name FROM agencies ORDER BY name",
            [],
            |r| Agency {
                id: AgencyId(r.try_get("id")?),
                name: r.try_get("name")?
            }
        ))
    }

    pub async fn agency_by_name(&self, name: &str) -> Result<Option<Agency>, StoreError> {
        Ok(self
            .list_agencies()
            .await?
            .into_iter()
            .find(|a| a.name.eq_ignore_ascii_case(name)))
    }
}
