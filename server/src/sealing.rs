//! Secrets at rest: webhook signing secrets and the per-install secrets (the pay-form key,
//! the sandbox's consumer secret) are stored sealed under a master key that lives outside
//! the database, so a copy of the database (a backup, a dump, a stolen disk image of the
//! database server) does not let anyone sign webhooks as us or forge pay forms.
//!
//! ChaCha20-Poly1305 from `ring` (already in the tree through rustls): a random 96-bit
//! nonce per value, and the value's place (table, row, column) as associated data, so a
//! sealed value copied into another row or column fails to open instead of being
//! accepted. The stored text is `sealed:v1:{key id}:{base64url(nonce ‖ ciphertext ‖ tag)}`;
//! the key id (the first 4 bytes of SHA-256 of the key, in hex) names the key that sealed
//! it, so starting with the wrong key fails with a clear message instead of garbage.

use base64::Engine as _;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};
use std::{fmt, path::Path, sync::Arc};

const PREFIX: &str = "sealed:v1:";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a value could not be sealed, opened, or a key loaded.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "a secret in the database was sealed with master key {found}, but the configured key is {configured}"
    )]
    WrongKey { found: String, configured: String },
    #[error("a sealed secret in the database is damaged or was moved from another row")]
    Damaged,
    #[error("the master key must be 64 hex digits (32 bytes)")]
    BadKey,
    #[error("cannot read the master key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write the master key file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("no random numbers: {0}")]
    Random(getrandom::Error),
}

/// The key every secret at rest is sealed under. Cheap to clone; never printed.
#[derive(Clone)]
pub struct MasterKey {
    key: Arc<LessSafeKey>,
    /// For tokens derived from ids ([`MasterKey::derive_token`]): its own key, made
    /// from the master key with a label, never the sealing key itself.
    mac: Arc<ring::hmac::Key>,
    id: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// From its 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(hex_key: &str) -> Result<MasterKey, SealError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| SealError::BadKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        Ok(MasterKey::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; 32]) -> MasterKey {
        let id = hex::encode(&Sha256::digest(bytes)[..4]);
        let key = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, bytes).expect("32 bytes is ChaCha20's key size"),
        );
        let mac_key = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes),
            b"malipo derived tokens v1",
        );
        MasterKey {
            key: Arc::new(key),
            mac: Arc::new(ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                mac_key.as_ref(),
            )),
            id,
        }
    }

    /// A new random key (for a test-mode install's first start, and for tests).
    pub fn generate() -> Result<(MasterKey, String), SealError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(SealError::Random)?;
        Ok((MasterKey::from_bytes(&bytes), hex::encode(bytes)))
    }

    /// Reads the key from `path`; when the file does not exist and `create` is set,
    /// writes a new random key there first (readable by its owner only). Returns the key
    /// and whether it was created.
    pub fn load_or_create(path: &Path, create: bool) -> Result<(MasterKey, bool), SealError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                warn_if_readable_by_others(path);
                Ok((MasterKey::from_hex(&text)?, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let (key, hex_key) = MasterKey::generate()?;
                match write_new_private(path, &format!("{hex_key}\n")) {
                    Ok(()) => Ok((key, true)),
                    // Another instance made it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(path, false)
                    }
                    Err(source) => Err(SealError::Write {
                        path: shown,
                        source,
                    }),
                }
            }
            Err(source) => Err(SealError::Read {
                path: shown,
                source,
            }),
        }
    }

    /// The key's public name: 8 hex digits, safe to log.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// An unguessable token for `id` in `purpose` (a refund's callback URL): the same
    /// every time it is asked for, so nothing needs storing, and only this install
    /// (holding the master key) can make one. 43 characters of base64url.
    pub fn derive_token(&self, purpose: &str, id: &str) -> String {
        let tag = ring::hmac::sign(&self.mac, format!("{purpose}\0{id}").as_bytes());
        B64.encode(&tag.as_ref()[..32])
    }

    /// Seals `plain`, bound to `place` (e.g. `webhook_endpoints.secret:we_…`).
    pub fn seal(&self, place: &str, plain: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(SealError::Random)?;
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(place.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Damaged)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("{PREFIX}{}:{}", self.id, B64.encode(out)))
    }

    /// Opens a stored value sealed for `place`. A value that is not sealed (written
    /// before sealing existed) is returned as it is; [`is_sealed`] tells them apart, and
    /// start-up seals any such value it finds.
    pub fn open(&self, place: &str, stored: &str) -> Result<String, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (id, body) = rest.split_once(':').ok_or(SealError::Damaged)?;
        if id != self.id {
            return Err(SealError::WrongKey {
                found: id.to_owned(),
                configured: self.id.clone(),
            });
        }
        let raw = B64.decode(body).map_err(|_| SealError::Damaged)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError::Damaged);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Damaged)?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(place.as_bytes()), &mut buf)
            .map_err(|_| SealError::Damaged)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Damaged)
    }
}

/// Whether a stored value is sealed (rather than left from before sealing existed).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// The id of the key that sealed a stored value, if it is sealed.
pub fn sealed_with(stored: &str) -> Option<&str> {
    stored
        .strip_prefix(PREFIX)?
        .split_once(':')
        .map(|(id, _)| id)
}

/// Creates `path` with `text`, owner-only on Unix, failing with `AlreadyExists` if it
/// exists. Written whole to a temporary file first, then linked into place: a crash
/// never leaves a half-written key, and two first starts at once agree on one key.
fn write_new_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(std::io::Error::other)?;
    tmp.push(format!(".{}.tmp", hex::encode(suffix)));
    let tmp = std::path::PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    written
}

/// A key file others may read is a key others may have: say so (not fatal: the
/// operator's file system, the operator's call).
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the master key file is readable by other users: chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_binds_to_its_place() {
        let (key, _) = MasterKey::generate().unwrap();
        let sealed = key
            .seal("webhook_endpoints.secret:we_1", "whsec_abc")
            .unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(sealed_with(&sealed), Some(key.id()));
        assert_eq!(
            key.open("webhook_endpoints.secret:we_1", &sealed).unwrap(),
            "whsec_abc"
        );
        // Two seals of one secret differ (random nonces).
        assert_ne!(
            sealed,
            key.seal("webhook_endpoints.secret:we_1", "whsec_abc")
                .unwrap()
        );
        // Copied into another row: refused.
        assert!(matches!(
            key.open("webhook_endpoints.secret:we_2", &sealed),
            Err(SealError::Damaged)
        ));
        // One flipped character: refused.
        let mut bad = sealed.clone().into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert!(
            key.open(
                "webhook_endpoints.secret:we_1",
                std::str::from_utf8(&bad).unwrap()
            )
            .is_err()
        );
        // Plain values from before sealing read as they are.
        assert_eq!(key.open("x", "whsec_old").unwrap(), "whsec_old");
    }

    #[test]
    fn another_key_is_named_not_misread() {
        let (a, _) = MasterKey::generate().unwrap();
        let (b, _) = MasterKey::generate().unwrap();
        let sealed = a.seal("p", "s").unwrap();
        match b.open("p", &sealed) {
            Err(SealError::WrongKey { found, configured }) => {
                assert_eq!(found, a.id());
                assert_eq!(configured, b.id());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn key_files_are_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        assert!(matches!(
            MasterKey::load_or_create(&path, false),
            Err(SealError::Read { .. })
        ));
        let (first, created) = MasterKey::load_or_create(&path, true).unwrap();
        assert!(created);
        let (again, created) = MasterKey::load_or_create(&path, true).unwrap();
        assert!(!created);
        assert_eq!(first.id(), again.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        assert!(matches!(
            MasterKey::from_hex("abcd"),
            Err(SealError::BadKey)
        ));
    }
}
