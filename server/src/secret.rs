//! Bearer secrets (session ids, API tokens, invitation tokens): 256 random
//! bits, shown to their owner once, stored only as a SHA-256 hash so that a
//! copy of the database cannot be used to sign in.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub type SecretHash = [u8; 32];

/// A fresh secret with a readable prefix (`pk_` for API tokens, ...), and
/// its hash.
pub fn generate(prefix: &str) -> (String, SecretHash) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&secret);
    (secret, hash)
}

pub fn hash(secret: &str) -> SecretHash {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_prefixed_and_hashed() {
        let (a, ha) = generate("pk_");
        let (b, hb) = generate("pk_");
        assert!(a.starts_with("pk_") && a.len() > 40);
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert_eq!(hash(&a), ha);
    }
}
