//! The protocol's state over HTTP: reading it, lock, reopen, sign-off
//! (justering), reject, and the meeting's audit log.

use axum::{Json, extract::rejection::JsonRejection};
use serde::{Deserialize, Serialize};

use super::{actor, lifecycle};
use crate::{
    finalise::ProtocolView,
    http::{
        call::Call,
        error::{ApiError, json_rejection},
    },
};

/// The protocol's state; once locked, its hash, required sign-offs,
/// signature and export links.
#[utoipa::path(get, path = "/api/meetings/{id}/protocol", tag = "protocol",
    responses((status = 200, body = ProtocolView), (status = 401), (status = 404)))]
pub async fn status(call: Call) -> Result<Json<ProtocolView>, ApiError> {
    let (app, meeting, _) = actor(call).await?;
    Ok(Json(lifecycle(&app).view(meeting).await?))
}

/// Lock the protocol (the secretary, or an administrator). From now on no
/// edit is accepted; open connections are told through the document's
/// `protocol` map and refused with close code 4423 if they write.
#[utoipa::path(post, path = "/api/meetings/{id}/protocol/lock", tag = "protocol",
    responses((status = 200, body = ProtocolView), (status = 403), (status = 404),
        (status = 409, description = "not a draft, or nobody (chair, justerare) could verify it"),
        (status = 422, description = "`not_archivable`: the protocol cannot become its archival \
            PDF; `error.problem` names the section (`item`) and what is wrong (`kind`: \
            `link_too_long`, `text_too_large`, `too_many_nodes`, `nested_too_deep`, `typeset`)")))]
pub async fn lock(call: Call) -> Result<Json<ProtocolView>, ApiError> {
    let (app, meeting, actor) = actor(call).await?;
    Ok(Json(lifecycle(&app).lock(meeting, &actor).await?))
}

/// Take a locked protocol back to draft before anyone signed it off (the
/// secretary, or an administrator).
#[utoipa::path(post, path = "/api/meetings/{id}/protocol/reopen", tag = "protocol",
    responses((status = 200, body = ProtocolView), (status = 403), (status = 404), (status = 409)))]
pub async fn reopen(call: Call) -> Result<Json<ProtocolView>, ApiError> {
    let (app, meeting, actor) = actor(call).await?;
    Ok(Json(lifecycle(&app).reopen(meeting, &actor).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignoffInput {
    /// The hash of the protocol you were shown.
    hash: String,
}

/// Sign off the protocol (the chair and each justerare), against the hash
/// you were shown: another hash is refused with 409. The last required
/// sign-off verifies the protocol and the server signs it.
#[utoipa::path(post, path = "/api/meetings/{id}/signoffs", tag = "protocol", request_body = SignoffInput,
    responses((status = 200, body = ProtocolView), (status = 403), (status = 404),
        (status = 409, description = "not locked, already signed, or a stale hash")))]
pub async fn signoff(
    call: Call,
    body: Result<Json<SignoffInput>, JsonRejection>,
) -> Result<Json<ProtocolView>, ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    let (app, meeting, actor) = actor(call).await?;
    Ok(Json(
        lifecycle(&app)
            .signoff(meeting, &actor, body.hash.trim())
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectInput {
    /// The hash of the protocol you were shown.
    hash: String,
    /// Why it is rejected (required, at most 2000 characters).
    reason: String,
}

/// Reject the protocol (the chair or a justerare), with a reason: it goes
/// back to draft, and the rejection is in the audit log.
#[utoipa::path(post, path = "/api/meetings/{id}/protocol/reject", tag = "protocol", request_body = RejectInput,
    responses((status = 200, body = ProtocolView), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn reject(
    call: Call,
    body: Result<Json<RejectInput>, JsonRejection>,
) -> Result<Json<ProtocolView>, ApiError> {
    let Json(body) = body.map_err(json_rejection)?;
    let (app, meeting, actor) = actor(call).await?;
    Ok(Json(
        lifecycle(&app)
            .reject(meeting, &actor, body.hash.trim(), &body.reason)
            .await?,
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditView {
    id: i64,
    at: String,
    actor_id: Option<String>,
    actor_name: String,
    /// `lock`, `reopen`, `signoff`, `reject` or `verify`.
    action: String,
    reason: Option<String>,
    hash: Option<String>,
    /// `api` or `cli`.
    via: String,
}

/// The meeting's audit log: every lock, reopening, sign-off, rejection and
/// verification, oldest first. Never rewritten.
#[utoipa::path(get, path = "/api/meetings/{id}/audit", tag = "protocol",
    responses((status = 200, body = Vec<AuditView>), (status = 404)))]
pub async fn audit(call: Call) -> Result<Json<Vec<AuditView>>, ApiError> {
    let (app, meeting, _) = actor(call).await?;
    let entries = app.db.protocols.audit(meeting).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| AuditView {
                id: e.id,
                at: crate::finalise::rfc3339(e.at),
                actor_id: e.actor_id.map(|u| u.to_string()),
                actor_name: e.actor_name,
                action: e.action,
                reason: e.reason,
                hash: e.hash,
                via: e.via,
            })
            .collect(),
    ))
}
