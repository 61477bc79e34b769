//! Ed25519 keys and signatures, and account addresses derived from keys.

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, str::FromStr};

/// An ed25519 public key (32 bytes).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct PublicKey(#[serde(with = "crate::hexser")] pub [u8; 32]);

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "crate::hexser")] pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", hex::encode(&self.0[..8]))
    }
}

impl PublicKey {
    /// The account address of this key.
    pub fn address(&self) -> Address {
        let h = crate::Hash32::tagged("deed address v1", &self.0);
        let mut a = [0u8; 20];
        a.copy_from_slice(&h.0[..20]);
        Address(a)
    }

    /// Verifies `sig` over `msg` (strict: rejects small-order keys and malleable signatures).
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), crate::Error> {
        let vk = verifying_key(&self.0).map_err(|e| crate::Error::BadSignature(format!("invalid public key: {e}")))?;
        let s = ed25519_dalek::Signature::from_bytes(&sig.0);
        vk.verify_strict(msg, &s)
            .map_err(|_| crate::Error::BadSignature("signature does not match the signer's key".into()))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}..)", hex::encode(&self.0[..6]))
    }
}

impl FromStr for PublicKey {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|e| crate::Error::parse("public key", format!("expected 64 hex characters: {e}")))?;
        Ok(PublicKey(out))
    }
}

/// An account address: the first 20 bytes of a domain-separated BLAKE3 of the public key.
/// Written as `deed1` followed by 32 base32 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct Address(pub [u8; 20]);

/// The human-readable prefix of every address.
pub const ADDRESS_PREFIX: &str = "deed1";

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ADDRESS_PREFIX}{}", data_encoding::BASE32_NOPAD.encode(&self.0).to_ascii_lowercase())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s.strip_prefix(ADDRESS_PREFIX).ok_or_else(|| {
            crate::Error::parse("address", format!("expected an address starting with '{ADDRESS_PREFIX}'"))
        })?;
        let bytes = data_encoding::BASE32_NOPAD
            .decode(body.to_ascii_uppercase().as_bytes())
            .map_err(|e| crate::Error::parse("address", format!("not base32: {e}")))?;
        let arr: [u8; 20] = bytes.try_into().map_err(|_| crate::Error::parse("address", "expected 20 bytes"))?;
        Ok(Address(arr))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as Deserialize>::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A signing identity: an ed25519 secret key and its public key.
pub struct Keypair {
    sk: SigningKey,
}

impl Keypair {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the operating system's random source failed");
        Self::from_seed(seed)
    }

    /// The key with this 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Keypair { sk: SigningKey::from_bytes(&seed) }
    }

    /// A key derived from a name: for dev accounts and tests only, never for value.
    pub fn dev(name: &str) -> Self {
        Self::from_seed(crate::Hash32::tagged("deed dev key v1", name.as_bytes()).0)
    }

    /// The 32-byte secret seed.
    pub fn seed(&self) -> [u8; 32] {
        self.sk.to_bytes()
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.sk.verifying_key().to_bytes())
    }

    /// The account address.
    pub fn address(&self) -> Address {
        self.public().address()
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.sk.sign(msg).to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({:?})", self.public())
    }
}

/// Most decompressed public keys kept by [`verifying_key`].
const KEY_CACHE_LEN_MAX: usize = 65_536;

/// The decompressed form of an ed25519 public key. Decompressing (a square root in the
/// field) is a large part of checking one signature, and the same senders sign again
/// and again, so valid keys are kept in a bounded process-wide cache (emptied when
/// full). Whether a key is valid, and so every verification outcome, does not depend on
/// the cache.
fn verifying_key(bytes: &[u8; 32]) -> Result<VerifyingKey, ed25519_dalek::SignatureError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, PoisonError};
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], VerifyingKey>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(vk) = cache.lock().unwrap_or_else(PoisonError::into_inner).get(bytes) {
        return Ok(*vk);
    }
    let vk = VerifyingKey::from_bytes(bytes)?;
    let mut c = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if c.len() >= KEY_CACHE_LEN_MAX {
        c.clear();
    }
    c.insert(*bytes, vk);
    Ok(vk)
}

/// Verifies many (message, key, signature) triples at once; much faster than one by
/// one. On failure the caller re-checks individually to find the culprit.
pub fn verify_batch(msgs: &[&[u8]], keys: &[PublicKey], sigs: &[Signature]) -> Result<(), crate::Error> {
    assert!(msgs.len() == keys.len() && keys.len() == sigs.len(), "batch lengths differ");
    let vks = keys
        .iter()
        .map(|k| verifying_key(&k.0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| crate::Error::BadSignature(format!("invalid public key: {e}")))?;
    let ss: Vec<ed25519_dalek::Signature> = sigs.iter().map(|s| ed25519_dalek::Signature::from_bytes(&s.0)).collect();
    ed25519_dalek::verify_batch(msgs, &ss, &vks)
        .map_err(|_| crate::Error::BadSignature("batch verification failed".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_address_text() {
        let k = Keypair::dev("alice");
        let sig = k.sign(b"msg");
        k.public().verify(b"msg", &sig).unwrap();
        assert!(k.public().verify(b"msg2", &sig).is_err());
        let a = k.address();
        let s = a.to_string();
        assert!(s.starts_with("deed1") && s.len() == 5 + 32, "{s}");
        assert_eq!(s.parse::<Address>().unwrap(), a);
        assert!("deed1xyz".parse::<Address>().is_err());
        let b = Keypair::dev("bob");
        verify_batch(&[b"m1", b"m2"], &[k.public(), b.public()], &[k.sign(b"m1"), b.sign(b"m2")]).unwrap();
        assert!(verify_batch(&[b"m1", b"m2"], &[k.public(), b.public()], &[k.sign(b"m1"), b.sign(b"m1")]).is_err());
    }
}
