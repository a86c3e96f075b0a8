//! Who may do what: tenants' API keys (kept as SHA-256 hashes), widget tokens (signed
//! with HMAC-SHA256, scoped to a tenant and a call, short-lived), the admin key, and the
//! Origin allowlist for browser connections.
//!
//! A widget token is `kt1.<payload>.<signature>`, both parts base64url without padding;
//! the payload is JSON: `{"t":tenant,"c":call_id,"exp":unix_seconds}` (or `"s":true` in
//! place of `"c"` for a tenant's supervisor feed). Browsers pass it in the
//! `Sec-WebSocket-Protocol` header as the protocol `keel.token.<token>`, beside
//! `keel.v1`, which keel selects; other clients may send `Authorization: Bearer <token>`.
//! Tokens never appear in URLs or logs.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::ServerConfig;

/// The subprotocol keel selects when a browser offers it.
pub const PROTOCOL: &str = "keel.v1";
/// The prefix of the subprotocol that carries a widget token.
pub const TOKEN_PROTOCOL_PREFIX: &str = "keel.token.";
/// The tenant of every call when no tenants are configured.
pub const DEFAULT_TENANT: &str = "default";

/// The SHA-256 of a key, in hex: what the configuration keeps.
pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(b)
}

/// A new random API key (256 bits).
pub fn new_key() -> std::io::Result<String> {
    Ok(format!("kk_{}", B64.encode(random_bytes::<32>()?)))
}

/// Reads the token-signing secret, or creates the file with a random one (readable by
/// its owner only).
pub fn load_or_create_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let s = s.trim();
            if s.len() < 32 {
                return Err(std::io::Error::other(format!(
                    "{}: the token secret must be at least 32 characters",
                    path.display()
                )));
            }
            Ok(s.as_bytes().to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let secret = B64.encode(random_bytes::<32>()?);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            match opts.open(path) {
                Ok(mut f) => {
                    f.write_all(secret.as_bytes())?;
                    f.write_all(b"\n")?;
                    Ok(secret.into_bytes())
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_secret(path)
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// What a widget token lets its holder read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One call's widget feed.
    Call(String),
    /// The tenant's supervisor alert feed.
    Supervisor,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    t: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    s: bool,
    exp: u64,
}

/// A verified widget token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub tenant: String,
    pub scope: Scope,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn sign(secret: &[u8], msg: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(msg);
    mac
}

/// Mints a token for `tenant` and `scope`, valid for `ttl` from `now` (Unix seconds).
pub fn mint(secret: &[u8], tenant: &str, scope: &Scope, ttl: Duration, now: u64) -> String {
    let payload = Payload {
        t: tenant.to_string(),
        c: match scope {
            Scope::Call(c) => Some(c.clone()),
            Scope::Supervisor => None,
        },
        s: *scope == Scope::Supervisor,
        exp: now + ttl.as_secs().max(1),
    };
    let body = B64.encode(serde_json::to_vec(&payload).expect("payload serialises"));
    let signed = format!("kt1.{body}");
    let sig = B64.encode(sign(secret, signed.as_bytes()).finalize().into_bytes());
    format!("{signed}.{sig}")
}

/// Checks a token's signature and expiry at `now` (Unix seconds).
pub fn verify(secret: &[u8], token: &str, now: u64) -> Result<Claims, TokenError> {
    let (signed, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let body = signed.strip_prefix("kt1.").ok_or(TokenError::Malformed)?;
    let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
    sign(secret, signed.as_bytes())
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    let payload: Payload = B64
        .decode(body)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if payload.exp <= now {
        return Err(TokenError::Expired);
    }
    let scope = match (payload.c, payload.s) {
        (Some(c), false) => Scope::Call(c),
        (None, true) => Scope::Supervisor,
        _ => return Err(TokenError::Malformed),
    };
    Ok(Claims {
        tenant: payload.t,
        scope,
        exp: payload.exp,
    })
}

/// A refusal, before any websocket is opened: an HTTP status and a reason that names
/// what is wrong (never the credential itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub status: u16,
    /// For metrics and logs: `unauthorized`, `forbidden`, `bad_origin`,
    /// `too_many_connections`.
    pub code: &'static str,
    pub reason: String,
}

impl Denied {
    fn unauthorized(reason: impl Into<String>) -> Denied {
        Denied {
            status: 401,
            code: "unauthorized",
            reason: reason.into(),
        }
    }
    fn forbidden(reason: impl Into<String>) -> Denied {
        Denied {
            status: 403,
            code: "forbidden",
            reason: reason.into(),
        }
    }
}

/// The server's credentials, from its configuration.
pub struct Auth {
    /// Key hash → tenant.
    keys: HashMap<String, String>,
    admin: Option<String>,
    secret: Vec<u8>,
    origins: Vec<String>,
    enabled: bool,
}

/// The credential a request carries.
enum Credential<'a> {
    None,
    Bearer(&'a str),
    Token(&'a str),
}

impl Auth {
    pub fn new(cfg: &ServerConfig, secret: Vec<u8>) -> Auth {
        let mut keys = HashMap::new();
        for (tenant, t) in &cfg.tenants {
            for h in &t.api_keys_sha256 {
                keys.insert(h.to_ascii_lowercase(), tenant.clone());
            }
        }
        Auth {
            keys,
            admin: cfg
                .admin_key_sha256
                .as_ref()
                .map(|h| h.to_ascii_lowercase()),
            secret,
            origins: cfg.allowed_origins.clone(),
            enabled: cfg.auth(),
        }
    }

    /// Whether tenants are configured.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    fn credential(headers: &HeaderMap) -> Credential<'_> {
        for v in headers.get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL) {
            for p in v.to_str().unwrap_or("").split(',') {
                if let Some(t) = p.trim().strip_prefix(TOKEN_PROTOCOL_PREFIX) {
                    return Credential::Token(t);
                }
            }
        }
        match headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
        {
            Some(t) if t.starts_with("kt1.") => Credential::Token(t),
            Some(k) => Credential::Bearer(k),
            None => Credential::None,
        }
    }

    /// The tenant of an API key (`Authorization: Bearer KEY`).
    pub fn platform(&self, headers: &HeaderMap) -> Result<String, Denied> {
        if !self.enabled {
            return match Auth::credential(headers) {
                Credential::Bearer(_) | Credential::None => Ok(DEFAULT_TENANT.to_string()),
                Credential::Token(_) => Err(Denied::forbidden(
                    "a widget token cannot be used for this endpoint",
                )),
            };
        }
        match Auth::credential(headers) {
            Credential::None => Err(Denied::unauthorized(
                "missing API key: send Authorization: Bearer <key>",
            )),
            Credential::Token(_) => Err(Denied::forbidden(
                "a widget token cannot be used for this endpoint: use the tenant's API key",
            )),
            Credential::Bearer(k) => self
                .keys
                .get(&hash_key(k))
                .cloned()
                .ok_or_else(|| Denied::unauthorized("unknown API key")),
        }
    }

    /// Who may read a call's widget feed: a token for that call, or the tenant's API key.
    /// Returns the tenant.
    pub fn feed(&self, headers: &HeaderMap, call_id: &str, now: u64) -> Result<String, Denied> {
        self.scoped(headers, &Scope::Call(call_id.to_string()), now)
    }

    /// Who may read a tenant's supervisor feed: a supervisor token, or the API key.
    pub fn supervisor(&self, headers: &HeaderMap, now: u64) -> Result<String, Denied> {
        self.scoped(headers, &Scope::Supervisor, now)
    }

    fn scoped(&self, headers: &HeaderMap, scope: &Scope, now: u64) -> Result<String, Denied> {
        match Auth::credential(headers) {
            Credential::Token(t) => {
                let claims = verify(&self.secret, t, now)
                    .map_err(|e| Denied::unauthorized(format!("widget token refused: {e}")))?;
                if claims.scope != *scope {
                    return Err(Denied::forbidden(match scope {
                        Scope::Call(_) => "widget token is for another call",
                        Scope::Supervisor => "widget token is not for the supervisor feed",
                    }));
                }
                if self.enabled && !self.keys.values().any(|t| *t == claims.tenant) {
                    return Err(Denied::forbidden("widget token names an unknown tenant"));
                }
                if !self.enabled && claims.tenant != DEFAULT_TENANT {
                    return Err(Denied::forbidden("widget token names an unknown tenant"));
                }
                Ok(claims.tenant)
            }
            _ if !self.enabled => Ok(DEFAULT_TENANT.to_string()),
            Credential::None => Err(Denied::unauthorized(
                "missing widget token: offer the subprotocol keel.token.<token>",
            )),
            Credential::Bearer(_) => self.platform(headers),
        }
    }

    /// Whether a request may use the admin endpoint.
    pub fn admin(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let Some(want) = &self.admin else {
            return if self.enabled {
                Err(Denied::forbidden(
                    "no admin key is configured (server.admin_key_sha256)",
                ))
            } else {
                Ok(())
            };
        };
        match Auth::credential(headers) {
            Credential::Bearer(k) if hash_key(k) == *want => Ok(()),
            Credential::None => Err(Denied::unauthorized(
                "missing admin key: send Authorization: Bearer <key>",
            )),
            _ => Err(Denied::unauthorized("wrong admin key")),
        }
    }

    /// Browser connections (those with an `Origin` header) must come from keel's own
    /// pages or an allowed origin.
    pub fn origin(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("");
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let same = !host.is_empty()
            && (origin == format!("http://{host}") || origin == format!("https://{host}"));
        if same || self.origins.iter().any(|o| o == "*" || o == origin) {
            Ok(())
        } else {
            Err(Denied {
                status: 403,
                code: "bad_origin",
                reason: format!("origin {origin:?} is not allowed (server.allowed_origins)"),
            })
        }
    }
}

/// The subprotocols keel answers with: `keel.v1` when offered, else the token protocol
/// the client offered (echoed, as browsers require an answer when they offer one).
pub fn answer_protocols(headers: &HeaderMap) -> Vec<String> {
    let mut out = vec![PROTOCOL.to_string()];
    for v in headers.get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL) {
        for p in v.to_str().unwrap_or("").split(',') {
            let p = p.trim();
            if p.starts_with(TOKEN_PROTOCOL_PREFIX) {
                out.push(p.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_expire_and_resist_tampering() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let t = mint(
            secret,
            "acme",
            &Scope::Call("c-1".into()),
            Duration::from_secs(60),
            1000,
        );
        let c = verify(secret, &t, 1059).unwrap();
        assert_eq!(c.tenant, "acme");
        assert_eq!(c.scope, Scope::Call("c-1".into()));
        assert_eq!(verify(secret, &t, 1060), Err(TokenError::Expired));
        assert_eq!(
            verify(b"another secret, another server!!", &t, 1001),
            Err(TokenError::BadSignature)
        );
        // A payload changed to another call no longer matches its signature.
        let (_, sig) = t.rsplit_once('.').unwrap();
        let forged_body = B64.encode(br#"{"t":"acme","c":"c-2","exp":99999}"#);
        assert_eq!(
            verify(secret, &format!("kt1.{forged_body}.{sig}"), 1001),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(secret, "kt1.nonsense", 1),
            Err(TokenError::Malformed)
        );
        assert_eq!(verify(secret, "garbage", 1), Err(TokenError::Malformed));
        let s = mint(
            secret,
            "acme",
            &Scope::Supervisor,
            Duration::from_secs(5),
            0,
        );
        assert_eq!(verify(secret, &s, 1).unwrap().scope, Scope::Supervisor);
    }

    #[test]
    fn keys_are_kept_hashed() {
        let k = new_key().unwrap();
        assert!(k.len() > 40);
        assert_ne!(k, new_key().unwrap());
        let h = hash_key(&k);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&k));
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
