//! The server's Ed25519 signing key: created on first start and kept in the
//! database, or kept in a PKCS#8 PEM file (`--signing-key-file`, the
//! format `openssl genpkey -algorithm ed25519` writes). Its public half is
//! always stored in the database and published, with a key id (the first
//! 16 hex digits of the SHA-256 of the public key), so that signatures stay
//! checkable after a key change.

use std::path::Path;

use base64::Engine;
use ed25519_dalek::{
    Signature, Signer as _, SigningKey, VerifyingKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};
use sha2::{Digest, Sha256};

use crate::store::{Database, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key file {path}: {message}")]
    File { path: String, message: String },
    #[error("the stored signing key {0} is damaged")]
    Damaged(String),
}

/// The key the server signs verified protocols with.
pub struct Signer {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.key_id)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key id of a public key.
pub fn key_id(public: &VerifyingKey) -> String {
    hex(&Sha256::digest(public.as_bytes()))[..16].to_owned()
}

fn random_key() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

impl Signer {
    /// The key from `file` (created there if missing), or the oldest key
    /// kept in the database (created there if there is none).
    pub async fn load(db: &Database, file: Option<&Path>) -> Result<Self, SigningError> {
        let key = match file {
            Some(path) => from_file(path)?,
            None => {
                let stored = db.protocols.signing_keys().await?;
                match stored
                    .into_iter()
                    .find_map(|(id, _, secret, _)| secret.map(|s| (id, s)))
                {
                    Some((id, secret)) => {
                        let bytes: [u8; 32] =
                            secret.try_into().map_err(|_| SigningError::Damaged(id))?;
                        SigningKey::from_bytes(&bytes)
                    }
                    None => {
                        let key = random_key();
                        let id = key_id(&key.verifying_key());
                        db.protocols
                            .add_signing_key(
                                &id,
                                key.verifying_key().as_bytes(),
                                Some(&key.to_bytes()),
                            )
                            .await?;
                        // Two servers starting at once on an empty database
                        // each add a key; both use the oldest.
                        return Box::pin(Self::load(db, None)).await;
                    }
                }
            }
        };
        let public = key.verifying_key();
        let id = key_id(&public);
        let secret_in_db = file.is_none().then(|| key.to_bytes());
        db.protocols
            .add_signing_key(
                &id,
                public.as_bytes(),
                secret_in_db.as_ref().map(|s| &s[..]),
            )
            .await?;
        Ok(Self { key, key_id: id })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).to_bytes().to_vec()
    }
}

fn from_file(path: &Path) -> Result<SigningKey, SigningError> {
    let err = |message: String| SigningError::File {
        path: path.display().to_string(),
        message,
    };
    match std::fs::read_to_string(path) {
        Ok(pem) => SigningKey::from_pkcs8_pem(&pem).map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = random_key();
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| err(e.to_string()))?;
            write_private(path, pem.as_bytes()).map_err(|e| err(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// Writes a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A published key: id, raw public key (base64), SPKI PEM.
pub fn public_key_pem(public: &[u8]) -> Option<String> {
    let bytes: [u8; 32] = public.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes)
        .ok()?
        .to_public_key_pem(LineEnding::LF)
        .ok()
}

pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Whether `signature` is a valid (strict) Ed25519 signature of `message`
/// by `public`.
pub fn verify(public: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let (Ok(public), Ok(signature)) = (
        <[u8; 32]>::try_from(public),
        <[u8; 64]>::try_from(signature),
    ) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&public) else {
        return false;
    };
    key.verify_strict(message, &Signature::from_bytes(&signature))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_message_does_not() {
        let key = random_key();
        let signature = key.sign(b"record").to_bytes();
        let public = key.verifying_key().to_bytes();
        assert!(verify(&public, b"record", &signature));
        assert!(!verify(&public, b"recorD", &signature));
        assert!(!verify(&public, b"record", &signature[..63]));
    }

    #[test]
    fn key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let first = from_file(&path).unwrap();
        let second = from_file(&path).unwrap();
        assert_eq!(first.to_bytes(), second.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(
            public_key_pem(first.verifying_key().as_bytes())
                .unwrap()
                .contains("PUBLIC KEY")
        );
    }
}
