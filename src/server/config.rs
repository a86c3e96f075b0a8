//! The server's part of the configuration file: the `[server]` table and one
//! `[tenants.NAME]` table per tenant. Every field has a default (`keel.example.toml`
//! documents them); command-line flags override the file.
//!
//! Authentication is configured when at least one tenant is: then every platform
//! connection needs its tenant's API key, every widget feed a signed token, and keel may
//! listen on any address. Without tenants every call belongs to the tenant `default`,
//! nothing needs credentials, and keel refuses to listen beyond loopback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::coach::config::ConfigError;

/// The `[server]` table, with the tenants.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Folder for keel's data (the widget-token secret, records).
    pub data: PathBuf,
    /// The lexicon set.
    pub lexicons: PathBuf,
    /// How long a call whose platform connection dropped waits for it.
    #[serde(with = "humantime_serde_lite")]
    pub grace_period: Duration,
    /// keel pings every connection this often.
    #[serde(with = "humantime_serde_lite")]
    pub ping_interval: Duration,
    /// A connection that sends nothing (not even a pong) for this long is closed.
    #[serde(with = "humantime_serde_lite")]
    pub idle_timeout: Duration,
    /// At shutdown, how long keel waits for connections to finish after ending the calls.
    #[serde(with = "humantime_serde_lite")]
    pub shutdown_deadline: Duration,
    /// Open websocket connections a tenant may hold (platform, widget and supervisor
    /// together), unless its own table says otherwise.
    pub max_connections_per_tenant: usize,
    /// Origins (`https://host[:port]`) whose pages may open websockets; a page served by
    /// keel itself (`/widget/`) always may. `"*"` allows any.
    pub allowed_origins: Vec<String>,
    /// Lifetime of a widget token when the request names none.
    #[serde(with = "humantime_serde_lite")]
    pub token_ttl: Duration,
    /// The longest lifetime a widget token may be given.
    #[serde(with = "humantime_serde_lite")]
    pub token_max_ttl: Duration,
    /// The file holding the secret that signs widget tokens (created with a random
    /// secret if missing). Relative paths are under `data`. Every keel instance that
    /// serves the same widgets needs the same secret.
    pub token_secret_file: PathBuf,
    /// SHA-256 (hex) of the key for `POST /v1/admin/reload`. Without it, and without
    /// tenants, the admin endpoint is open (loopback only); with tenants but no admin
    /// key, it is closed.
    pub admin_key_sha256: Option<String>,
    /// `text` (default) or `json` logs on standard error.
    pub log_format: LogFormat,
    /// The tenants, by name.
    #[serde(skip)]
    pub tenants: BTreeMap<String, TenantConfig>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// One `[tenants.NAME]` table.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantConfig {
    /// SHA-256 (hex) of each API key the tenant's platform may use (`keel key` makes one).
    pub api_keys_sha256: Vec<String>,
    /// Overrides `max_connections_per_tenant`.
    pub max_connections: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data: PathBuf::from("keel-data"),
            lexicons: PathBuf::from("lexicons"),
            grace_period: Duration::from_secs(120),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            shutdown_deadline: Duration::from_secs(10),
            max_connections_per_tenant: 1000,
            allowed_origins: Vec::new(),
            token_ttl: Duration::from_secs(15 * 60),
            token_max_ttl: Duration::from_secs(12 * 3600),
            token_secret_file: PathBuf::from("token-secret"),
            admin_key_sha256: None,
            log_format: LogFormat::Text,
            tenants: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize, Default)]
struct File {
    #[serde(default)]
    server: Option<toml::Value>,
    #[serde(default)]
    tenants: Option<toml::Value>,
}

impl ServerConfig {
    /// Whether tenants (and so authentication) are configured.
    pub fn auth(&self) -> bool {
        !self.tenants.is_empty()
    }

    /// The token-secret file's path.
    pub fn token_secret_path(&self) -> PathBuf {
        if self.token_secret_file.is_absolute() {
            self.token_secret_file.clone()
        } else {
            self.data.join(&self.token_secret_file)
        }
    }

    /// Reads the `[server]` and `[tenants.*]` tables of a TOML file.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let (file, src) = crate::coach::config::read(path)?;
        ServerConfig::parse(&file, &src)
    }

    pub fn parse(file: &str, src: &str) -> Result<ServerConfig, ConfigError> {
        let err = |span: Option<std::ops::Range<usize>>, reason: String| ConfigError {
            file: file.to_string(),
            line: span
                .map(|s| src[..s.start.min(src.len())].matches('\n').count() + 1)
                .unwrap_or(1),
            reason,
        };
        // Parse twice: once for the tables, then each table on its own so that errors
        // name the table's field and line.
        let parsed: File = toml::from_str(src).map_err(|e| err(e.span(), e.message().into()))?;
        let mut cfg = match parsed.server {
            None => ServerConfig::default(),
            Some(_) => {
                #[derive(Deserialize)]
                struct S {
                    server: ServerConfig,
                }
                let de = toml::Deserializer::new(src);
                let s: S = serde::Deserialize::deserialize(de).map_err(|e: toml::de::Error| {
                    err(e.span(), format!("[server] {}", e.message()))
                })?;
                s.server
            }
        };
        if parsed.tenants.is_some() {
            #[derive(Deserialize)]
            struct T {
                tenants: BTreeMap<String, TenantConfig>,
            }
            let de = toml::Deserializer::new(src);
            let t: T = serde::Deserialize::deserialize(de).map_err(|e: toml::de::Error| {
                err(e.span(), format!("[tenants] {}", e.message()))
            })?;
            cfg.tenants = t.tenants;
        }
        let line_of = |needle: &str| src.find(needle).map(|p| p..p + 1).or(Some(0..0));
        for (name, t) in &cfg.tenants {
            if !valid_name(name) {
                return Err(err(
                    line_of(&format!("[tenants.{name}")),
                    format!("tenants.{name}: a tenant name is letters, digits, '-', '_' and '.'"),
                ));
            }
            if t.api_keys_sha256.is_empty() {
                return Err(err(
                    line_of(&format!("[tenants.{name}")),
                    format!("tenants.{name}.api_keys_sha256: at least one key hash is needed (make one with `keel key`)"),
                ));
            }
            for h in &t.api_keys_sha256 {
                if !is_sha256_hex(h) {
                    return Err(err(
                        line_of(h),
                        format!("tenants.{name}.api_keys_sha256: {h:?} is not 64 hex digits (the SHA-256 of a key, not the key)"),
                    ));
                }
            }
        }
        if let Some(h) = &cfg.admin_key_sha256 {
            if !is_sha256_hex(h) {
                return Err(err(
                    line_of("admin_key_sha256"),
                    "server.admin_key_sha256: not 64 hex digits (the SHA-256 of a key, not the key)"
                        .into(),
                ));
            }
        }
        let positive = [
            ("server.ping_interval", cfg.ping_interval),
            ("server.idle_timeout", cfg.idle_timeout),
            ("server.token_ttl", cfg.token_ttl),
            ("server.token_max_ttl", cfg.token_max_ttl),
        ];
        for (field, d) in positive {
            if d.is_zero() {
                let key = field.rsplit('.').next().unwrap_or(field);
                return Err(err(
                    line_of(key),
                    format!("{field}: must be more than zero"),
                ));
            }
        }
        if cfg.idle_timeout <= cfg.ping_interval {
            return Err(err(
                line_of("idle_timeout"),
                "server.idle_timeout: must be longer than server.ping_interval".into(),
            ));
        }
        if cfg.token_ttl > cfg.token_max_ttl {
            return Err(err(
                line_of("token_ttl"),
                "server.token_ttl: longer than server.token_max_ttl".into(),
            ));
        }
        for o in &cfg.allowed_origins {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(err(
                    line_of(o),
                    format!("server.allowed_origins: {o:?} is not an origin (https://host[:port]) or \"*\""),
                ));
            }
        }
        Ok(cfg)
    }
}

/// Tenant names and call ids are kept to a safe alphabet: they are keys and URL parts.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Durations written as humans do: `"120s"`, `"2m"`, `"500ms"`, `"1h 30m"`.
mod humantime_serde_lite {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "{s:?}: {e} (write e.g. \"120s\", \"2m\", \"500ms\")"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_holds_the_defaults() {
        let src = include_str!("../../keel.example.toml");
        assert_eq!(
            ServerConfig::parse("keel.example.toml", src).unwrap(),
            ServerConfig::default()
        );
    }

    #[test]
    fn defaults_without_a_server_table() {
        let c = ServerConfig::parse("k.toml", "[policy]\ncooldown_ms = 1\n").unwrap();
        assert_eq!(c, ServerConfig::default());
        assert!(!c.auth());
    }

    #[test]
    fn tables_and_errors_name_the_field_and_line() {
        let key = "a".repeat(64);
        let c = ServerConfig::parse(
            "k.toml",
            &format!(
                "[server]\nlisten = \"0.0.0.0:9000\"\ngrace_period = \"30s\"\n\n[tenants.acme]\napi_keys_sha256 = [\"{key}\"]\nmax_connections = 3\n"
            ),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.grace_period, Duration::from_secs(30));
        assert_eq!(c.tenants["acme"].max_connections, Some(3));
        assert!(c.auth());

        let e = ServerConfig::parse("k.toml", "[server]\n\ngrace_period = \"soon\"\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.to_string().contains("soon"), "{e}");
        let e = ServerConfig::parse("k.toml", "[server]\nlisen = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        let e = ServerConfig::parse("k.toml", "[tenants.acme]\napi_keys_sha256 = [\"secret\"]\n")
            .unwrap_err();
        assert!(
            e.to_string().contains("tenants.acme.api_keys_sha256"),
            "{e}"
        );
        assert_eq!(e.line, 2, "{e}");
        let e = ServerConfig::parse("k.toml", "[server]\nping_interval = \"90s\"\n").unwrap_err();
        assert!(e.to_string().contains("idle_timeout"), "{e}");
    }
}
