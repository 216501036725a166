//! `/api/people` and `/api/agencies`: whom a secretary can add to a
//! meeting or give a section. For secretaries and administrators (the
//! rule is `crate::meetings`'s).

use axum::{Json, extract::State};
use serde::Serialize;

use super::{AppState, auth::CurrentUser, error::ApiError};
use crate::people::{Agency, UserId};

#[derive(Serialize, utoipa::ToSchema)]
pub struct PersonView {
    #[schema(value_type = String, format = Uuid)]
    id: UserId,
    display_name: String,
    #[schema(value_type = Option<Object>)]
    agency: Option<Agency>,
}

/// People to add to a meeting or to give a section: id, name and agency
/// (no usernames). For secretaries and administrators.
#[utoipa::path(get, path = "/api/people", tag = "participants",
    responses((status = 200, body = Vec<PersonView>), (status = 401), (status = 403)))]
pub async fn people(
    State(app): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Vec<PersonView>>, ApiError> {
    app.meetings().may_pick_people(&me.0.user).await?;
    Ok(Json(
        app.db
            .dir
            .list_users()
            .await?
            .into_iter()
            .map(|u| PersonView {
                id: u.id,
                display_name: u.display_name,
                agency: u.agency,
            })
            .collect(),
    ))
}

/// Agencies that sections can be assigned to. For secretaries and
/// administrators.
#[utoipa::path(get, path = "/api/agencies", tag = "participants",
    responses((status = 200), (status = 401), (status = 403)))]
pub async fn agencies(
    State(app): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Vec<Agency>>, ApiError> {
    app.meetings().may_pick_people(&me.0.user).await?;
    Ok(Json(app.db.dir.list_agencies().await?))
}
