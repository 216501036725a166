//! Password hashing with Argon2id (the `argon2` crate's defaults: 19 MiB,
//! 2 passes, 1 lane, the OWASP minimum). Hashing is deliberately slow, so it
//! runs on the blocking pool, never on the async workers.

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};

use crate::people::NewPassword;

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError;

pub async fn hash(password: NewPassword) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| HashError)
    })
    .await
    .map_err(|_| HashError)?
}

/// Checks `password` against `stored`. With no stored hash (unknown user, or
/// one who has not set a password), a dummy hash is checked anyway, so that
/// the answer takes as long as for a real user.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let dummy = dummy_hash();
        let (hash, real) = match stored.as_deref().map(PasswordHash::new) {
            Some(Ok(parsed)) => (parsed, true),
            _ => (PasswordHash::new(dummy).expect("valid dummy hash"), false),
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok();
        ok && real
    })
    .await
    .unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"no such user", &salt)
            .expect("hashing a constant")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hashed = hash(NewPassword::parse("korrekt hästbatteri").unwrap())
            .await
            .unwrap();
        assert!(hashed.starts_with("$argon2id$"), "{hashed}");
        assert!(verify("korrekt hästbatteri".into(), Some(hashed.clone())).await);
        assert!(!verify("fel lösenord här".into(), Some(hashed)).await);
        assert!(!verify("no such user".into(), None).await);
    }
}
