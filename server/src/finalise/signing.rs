//! The server's Ed25519 signing key: kept in the database, or in a PKCS#8
//! PEM file (`--signing-key-file`, the format `openssl genpkey -algorithm
//! ed25519` writes). Its public half is always stored in the database and
//! published, with a key id (the first 16 hex digits of the SHA-256 of the
//! public key), so that signatures stay checkable after a key change.
//!
//! The database records which key is in use (migration 0008). Only a
//! process that signs loads a key ([`Signer::load`]: the server at start,
//! the command line's `meeting signoff`), and it creates or records one
//! only when none is recorded: a process that would sign with another key
//! than the recorded one refuses with a message that says which key is in
//! use and where it is kept. A retired key never signs again.

use std::path::Path;

use base64::Engine;
use ed25519_dalek::{
    Signature, Signer as _, SigningKey, VerifyingKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};
use sha2::{Digest, Sha256};

use crate::store::{Database, KeyClaim, StoreError, StoredKey};

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key file {path}: {message}")]
    File { path: String, message: String },
    #[error("the stored signing key {0} is damaged")]
    Damaged(String),
    /// This process would sign with another key than the one the database
    /// records as in use, or cannot tell which.
    #[error("{0}")]
    Refused(String),
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

fn from_stored(key: &StoredKey) -> Result<SigningKey, SigningError> {
    let secret = key
        .secret_key
        .clone()
        .ok_or_else(|| SigningError::Damaged(key.key_id.clone()))?;
    let bytes: [u8; 32] = secret
        .try_into()
        .map_err(|_| SigningError::Damaged(key.key_id.clone()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// How many times a claim that lost a race to another process is read
/// again before giving up.
const CLAIM_ATTEMPTS: usize = 3;

impl Signer {
    /// The key this process signs with: from `file` or from the database,
    /// and always the one the database records as in use. When none is
    /// recorded, the file's key (the file is created if missing) or the
    /// database's (created if there is none) becomes the key in use.
    /// Refused, with what to do, when the file holds another key than the
    /// one in use, the key in use is kept in a file that was not given,
    /// or the database holds several keys none of which is recorded and
    /// some are kept in files (which one is meant cannot be told).
    pub async fn load(db: &Database, file: Option<&Path>) -> Result<Self, SigningError> {
        for _ in 0..CLAIM_ATTEMPTS {
            let keys = db.protocols.signing_keys().await?;
            if let Some(in_use) = keys.iter().find(|k| k.in_use) {
                return Self::the_key_in_use(in_use, file);
            }
            let (key, secret_in_db) = match file {
                Some(path) => (from_file(path, true)?, false),
                None => {
                    let unrecorded: Vec<&StoredKey> =
                        keys.iter().filter(|k| k.retired_at.is_none()).collect();
                    let in_files: Vec<&str> = unrecorded
                        .iter()
                        .filter(|k| k.secret_key.is_none())
                        .map(|k| k.key_id.as_str())
                        .collect();
                    if !in_files.is_empty() {
                        return Err(SigningError::Refused(format!(
                            "no signing key is recorded as in use, and this database knows keys \
                             kept in files ({}): give the server's --signing-key-file, or retire \
                             the keys that are no longer used (`protokoll signing-key retire ID`)",
                            in_files.join(", ")
                        )));
                    }
                    // Kept here from before keys were recorded: the oldest,
                    // as before.
                    match unrecorded.first() {
                        Some(stored) => (from_stored(stored)?, true),
                        None => (random_key(), true),
                    }
                }
            };
            let public = key.verifying_key();
            let id = key_id(&public);
            let secret = secret_in_db.then(|| key.to_bytes());
            match db
                .protocols
                .claim_signing_key(&id, public.as_bytes(), secret.as_ref().map(|s| &s[..]))
                .await?
            {
                KeyClaim::Claimed => return Ok(Self { key, key_id: id }),
                KeyClaim::Retired => {
                    return Err(SigningError::Refused(format!(
                        "signing key {id}{} was retired and never signs again: give a new key \
                         file (a missing file is created)",
                        file.map(|p| format!(" (in {})", p.display()))
                            .unwrap_or_default()
                    )));
                }
                // Another process recorded its key meanwhile: compare with it.
                KeyClaim::OtherInUse(_) | KeyClaim::Raced => continue,
            }
        }
        Err(SigningError::Refused(
            "could not record a signing key: other processes kept recording theirs".into(),
        ))
    }

    /// The key in use, if this process may sign with it.
    fn the_key_in_use(in_use: &StoredKey, file: Option<&Path>) -> Result<Self, SigningError> {
        let id = &in_use.key_id;
        let key = match (file, in_use.secret_key.is_some()) {
            (Some(path), _) => {
                let key = from_file(path, false).map_err(|e| match e {
                    SigningError::File { message, .. } if message == MISSING => {
                        SigningError::Refused(format!(
                            "the database records signing key {id} as in use, and the key file \
                             {} does not exist: give the file that holds key {id} (a new key is \
                             made only when no key is in use: retire {id} first with `protokoll \
                             signing-key retire {id}`)",
                            path.display()
                        ))
                    }
                    other => other,
                })?;
                let found = key_id(&key.verifying_key());
                if &found != id {
                    return Err(SigningError::Refused(format!(
                        "the key file {} holds signing key {found}, but the database records key \
                         {id} as in use{}: give the file that holds {id}, or retire {id} first \
                         with `protokoll signing-key retire {id}`",
                        path.display(),
                        if in_use.secret_key.is_some() {
                            " (kept in the database)"
                        } else {
                            " (kept in a file)"
                        }
                    )));
                }
                key
            }
            (None, true) => from_stored(in_use)?,
            (None, false) => {
                return Err(SigningError::Refused(format!(
                    "signing key {id} is in use and kept in a file: give that file with \
                     --signing-key-file (PROTOKOLL_SIGNING_KEY_FILE), as the server has it"
                )));
            }
        };
        Ok(Self {
            key,
            key_id: id.clone(),
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).to_bytes().to_vec()
    }
}

/// A process's signer, loaded where something is signed: the server loads
/// it at start ([`SignerSlot::loaded`]: a key problem stops it from
/// starting, not a sign-off hours later); the command line only when a
/// sign-off may complete the justering ([`SignerSlot::lazy`]), so that
/// reading commands never create or record a key.
pub struct SignerSlot {
    source: Option<(Database, Option<std::path::PathBuf>)>,
    cell: tokio::sync::OnceCell<std::sync::Arc<Signer>>,
}

impl SignerSlot {
    pub fn loaded(signer: Signer) -> Self {
        Self {
            source: None,
            cell: tokio::sync::OnceCell::new_with(Some(std::sync::Arc::new(signer))),
        }
    }

    pub fn lazy(db: Database, file: Option<std::path::PathBuf>) -> Self {
        Self {
            source: Some((db, file)),
            cell: tokio::sync::OnceCell::new(),
        }
    }

    /// The signer, loading it (once) if need be.
    pub async fn get(&self) -> Result<std::sync::Arc<Signer>, SigningError> {
        self.cell
            .get_or_try_init(|| async {
                let (db, file) = self
                    .source
                    .as_ref()
                    .ok_or_else(|| SigningError::Refused("no signing key was loaded".into()))?;
                Ok(std::sync::Arc::new(
                    Signer::load(db, file.as_deref()).await?,
                ))
            })
            .await
            .cloned()
    }
}

const MISSING: &str = "does not exist";

/// Reads the key from `path`; with `create`, a missing file is created
/// with a new key (readable by its owner only). A file that group or
/// others may read or write is refused: the key signs for the server.
fn from_file(path: &Path, create: bool) -> Result<SigningKey, SigningError> {
    use std::io::Read;
    let err = |message: String| SigningError::File {
        path: path.display().to_string(),
        message,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !create {
                return Err(err(MISSING.into()));
            }
            let key = random_key();
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| err(e.to_string()))?;
            write_private(path, pem.as_bytes()).map_err(|e| err(e.to_string()))?;
            return Ok(key);
        }
        Err(e) => return Err(err(e.to_string())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The open file's own mode: no window between checking and reading.
        let mode = file
            .metadata()
            .map_err(|e| err(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "group or others may access it (mode {:04o}); make it readable by the server's \
                 user only: chmod 600 {}",
                mode & 0o7777,
                path.display()
            )));
        }
    }
    let mut pem = String::new();
    file.read_to_string(&mut pem)
        .map_err(|e| err(e.to_string()))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| err(e.to_string()))
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

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        from_file(&path, true).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = from_file(&path, false).unwrap_err().to_string();
            assert!(e.contains("chmod 600"), "{mode:o}: {e}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(from_file(&path, false).is_ok());
    }

    #[test]
    fn a_missing_key_file_is_created_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        assert!(from_file(&path, false).is_err());
        assert!(!path.exists());
        from_file(&path, true).unwrap();
        assert!(path.exists());
    }

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
        let first = from_file(&path, true).unwrap();
        let second = from_file(&path, false).unwrap();
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
