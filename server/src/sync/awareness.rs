//! Presence (cursors, names) of a room's clients, as y-protocols' awareness
//! defines it: per client id, a clock and a JSON state; `null` means gone.
//! The server keeps the latest state per client so that a joining client sees
//! who is there, and so that a client's presence can be removed for everyone
//! when its connection ends.

use std::{collections::HashMap, sync::Arc};

use yrs::{
    ClientID,
    sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry},
};

use crate::access::Principal;

const NULL: &str = "null";

/// Replaces the `user` of a presence state with the authenticated identity,
/// keeping the client's choice of colour and everything else (cursor, ...).
pub fn stamp_identity(json: &str, principal: &Principal) -> String {
    let mut state = match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let color = state
        .get("user")
        .and_then(|u| u.get("color"))
        .and_then(|c| c.as_str())
        .filter(|c| c.len() <= 32)
        .map(str::to_owned);
    let mut user = serde_json::json!({
        "id": principal.user_id.to_string(),
        "name": principal.name,
        "agency": principal.agency,
    });
    if let Some(color) = color {
        user["color"] = color.into();
    }
    state.insert("user".into(), user);
    serde_json::Value::Object(state).to_string()
}

#[derive(Debug, Default)]
pub struct AwarenessState {
    /// Every client ever seen, with its latest clock; removed clients keep
    /// their clock (with a `null` state) so a stale update cannot revive them.
    clients: HashMap<ClientID, AwarenessUpdateEntry>,
}

impl AwarenessState {
    /// Whether `entry` for `client` would change the state (y-protocols'
    /// rule: a higher clock wins, and an equal clock wins only to remove).
    pub fn would_change(&self, client: ClientID, entry: &AwarenessUpdateEntry) -> bool {
        match self.clients.get(&client) {
            None => true,
            Some(current) => {
                current.clock < entry.clock
                    || (current.clock == entry.clock
                        && &*entry.json == NULL
                        && &*current.json != NULL)
            }
        }
    }

    /// Applies an update by y-protocols' rule (see `would_change`). Returns
    /// the clients whose entry changed, so the caller can tell which clients
    /// a connection speaks for.
    pub fn apply(&mut self, update: &AwarenessUpdate) -> Vec<ClientID> {
        let mut changed = Vec::new();
        for (&client, entry) in &update.clients {
            if self.would_change(client, entry) {
                self.clients.insert(client, entry.clone());
                changed.push(client);
            }
        }
        changed
    }

    /// Marks the given clients as gone and returns the update announcing it,
    /// or `None` if none of them had a live state.
    pub fn remove(
        &mut self,
        clients: impl IntoIterator<Item = ClientID>,
    ) -> Option<AwarenessUpdate> {
        let null: Arc<str> = Arc::from(NULL);
        let mut removed = HashMap::new();
        for client in clients {
            if let Some(entry) = self.clients.get_mut(&client)
                && &*entry.json != NULL
            {
                entry.clock += 1;
                entry.json = null.clone();
                removed.insert(client, entry.clone());
            }
        }
        (!removed.is_empty()).then_some(AwarenessUpdate { clients: removed })
    }

    /// The live states, for a joining client or a query-awareness request.
    pub fn live(&self) -> Option<AwarenessUpdate> {
        let clients: HashMap<_, _> = self
            .clients
            .iter()
            .filter(|(_, e)| &*e.json != NULL)
            .map(|(&c, e)| (c, e.clone()))
            .collect();
        (!clients.is_empty()).then_some(AwarenessUpdate { clients })
    }
}

/// An awareness update that holds one client's state (for the tests here
/// and in `limits`).
#[cfg(test)]
pub(super) fn one_client(client: u64, clock: u32, json: &str) -> AwarenessUpdate {
    AwarenessUpdate {
        clients: HashMap::from([(
            ClientID::new(client),
            AwarenessUpdateEntry {
                clock,
                json: json.into(),
            },
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_clock_wins_and_older_is_ignored() {
        let mut state = AwarenessState::default();
        assert_eq!(state.apply(&one_client(1, 2, r#"{"a":2}"#)).len(), 1);
        assert!(state.apply(&one_client(1, 1, r#"{"a":1}"#)).is_empty());
        let live = state.live().unwrap();
        assert_eq!(&*live.clients[&ClientID::new(1)].json, r#"{"a":2}"#);
    }

    #[test]
    fn removal_bumps_the_clock_and_hides_the_client() {
        let mut state = AwarenessState::default();
        state.apply(&one_client(1, 5, r#"{"user":"x"}"#));
        let removal = state.remove([ClientID::new(1)]).unwrap();
        let entry = &removal.clients[&ClientID::new(1)];
        assert_eq!((entry.clock, &*entry.json), (6, "null"));
        assert!(state.live().is_none());
        assert!(state.remove([ClientID::new(1)]).is_none(), "already gone");
        assert!(
            state.apply(&one_client(1, 6, r#"{"user":"x"}"#)).is_empty(),
            "stale revive"
        );
    }

    #[test]
    fn equal_clock_null_removes() {
        let mut state = AwarenessState::default();
        state.apply(&one_client(3, 1, "{}"));
        assert_eq!(state.apply(&one_client(3, 1, "null")).len(), 1);
        assert!(state.live().is_none());
    }
}
