//! The server with tenants configured, over real sockets on 127.0.0.1:0: API keys,
//! widget tokens, the Origin allowlist, tenant-namespaced calls, connection caps, idle
//! timeouts, lexicon reload during live calls, and shutdown producing records.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use keel::coach::Policy;
use keel::lexicon::Lexicon;
use keel::server::auth::{hash_key, mint, now_secs, Scope};
use keel::server::config::TenantConfig;
use keel::server::{App, ServerConfig};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::Request;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::server::{close_code, next_text, Ws};
use super::support::{http, product_lexicon, root, TEST_LEXICON};

const ACME_KEY: &str = "kk_acme-test-key-0123456789";
const GLOBEX_KEY: &str = "kk_globex-test-key-9876543210";
const ADMIN_KEY: &str = "kk_admin-test-key";
const SECRET: &[u8] = b"test secret, 32 bytes or more...";

fn config() -> ServerConfig {
    let mut cfg = ServerConfig {
        admin_key_sha256: Some(hash_key(ADMIN_KEY)),
        allowed_origins: vec!["https://agents.acme.example".into()],
        ..Default::default()
    };
    cfg.tenants.insert(
        "acme".into(),
        TenantConfig {
            api_keys_sha256: vec![hash_key(ACME_KEY)],
            max_connections: None,
        },
    );
    cfg.tenants.insert(
        "globex".into(),
        TenantConfig {
            api_keys_sha256: vec![hash_key(GLOBEX_KEY)],
            max_connections: Some(2),
        },
    );
    cfg
}

struct Server {
    addr: SocketAddr,
    app: App,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

async fn serve(
    cfg: ServerConfig,
    lexicon: std::sync::Arc<Lexicon>,
    dir: Option<PathBuf>,
) -> Server {
    serve_app(App::with_config(
        lexicon,
        dir,
        Policy::default(),
        cfg,
        SECRET.to_vec(),
    ))
    .await
}

async fn serve_app(app: App) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server_app = app.clone();
    let handle = tokio::spawn(async move {
        keel::server::run(listener, server_app, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Server {
        addr,
        app,
        stop,
        handle,
    }
}

impl Server {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.handle.await.unwrap();
    }
}

fn request(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut r = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (k, v) in headers {
        r.headers_mut().insert(
            k.parse::<tokio_tungstenite::tungstenite::http::HeaderName>()
                .unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

/// Opens a websocket, or returns the HTTP status and body of the refusal.
async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Ws, (u16, String)> {
    match connect_async(request(addr, path, headers)).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(resp)) => Err((
            resp.status().as_u16(),
            resp.body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        )),
        Err(e) => panic!("{path}: {e}"),
    }
}

/// A widget token for one call, signed with `secret`, valid `ttl` seconds from `now`.
fn token(secret: &[u8], tenant: &str, call: &str, ttl: u64, now: u64) -> String {
    mint(
        secret,
        tenant,
        &Scope::Call(call.into()),
        Duration::from_secs(ttl),
        now,
    )
}

/// Opens a call's widget feed offering the subprotocol `proto`.
async fn feed_with(addr: SocketAddr, call: &str, proto: &str) -> Result<Ws, (u16, String)> {
    open(
        addr,
        &format!("/v1/calls/{call}/nudges"),
        &[("sec-websocket-protocol", proto)],
    )
    .await
}

/// Asserts that the `/metrics` text has a line.
fn assert_metric(metrics: &str, line: &str) {
    assert!(
        metrics.lines().any(|l| l == line),
        "no {line:?} in:\n{metrics}"
    );
}

/// Asks for a widget token for call `c-w` (`query` after the path) with `headers`.
async fn mint_request(addr: SocketAddr, query: &str, headers: &[(&str, &str)]) -> (u16, String) {
    http(
        addr,
        "POST",
        &format!("/v1/calls/c-w/widget-token{query}"),
        headers,
    )
    .await
}

/// Asks the server to reload its lexicon set with `authorization`.
async fn reload(addr: SocketAddr, authorization: &str) -> (u16, String) {
    http(
        addr,
        "POST",
        "/v1/admin/reload",
        &[("authorization", authorization)],
    )
    .await
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

async fn send(ws: &mut Ws, line: &str) {
    ws.send(Message::Text(line.into())).await.unwrap();
}

/// Reads until a message starting with `prefix`; returns it.
async fn until(ws: &mut Ws, prefix: &str) -> String {
    loop {
        let t = next_text(ws).await;
        if t.starts_with(prefix) {
            return t;
        }
    }
}

const ANGRY: &str = r#"{"type":"transcript","segment_id":"s-1","speaker":"customer","text":"this is ridiculous, I have been waiting for weeks","is_final":true,"start_ms":0,"end_ms":2500,"seq":1}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_connections_need_their_tenants_key() {
    let s = serve(config(), product_lexicon(), None).await;
    let path = "/v1/calls/c-1/stream";
    let (code, body) = open(s.addr, path, &[]).await.expect_err("no key: refused");
    assert_eq!(code, 401);
    assert!(body.contains("API key"), "{body}");
    let (code, body) = open(s.addr, path, &[("authorization", &bearer("kk_not-a-key"))])
        .await
        .expect_err("unknown key: refused");
    assert_eq!(code, 401, "{body}");
    // A widget token is not a platform credential.
    let t = token(SECRET, "acme", "c-1", 60, now_secs());
    let (code, _) = open(s.addr, path, &[("authorization", &bearer(&t))])
        .await
        .expect_err("a widget token cannot stream");
    assert_eq!(code, 403);

    // An input format keel does not read is refused before the websocket opens.
    let (code, body) = open(
        s.addr,
        "/v1/calls/c-1/stream?format=whisper",
        &[("authorization", &bearer(ACME_KEY))],
    )
    .await
    .expect_err("unknown format");
    assert_eq!(code, 400);
    assert!(
        body.contains("format") && body.contains("whisper"),
        "{body}"
    );

    let mut ws = open(s.addr, path, &[("authorization", &bearer(ACME_KEY))])
        .await
        .expect("acme's key opens acme's call");
    assert!(next_text(&mut ws).await.contains("\"state\":\"new\""));
    // A start naming another tenant is refused and the connection closed.
    send(
        &mut ws,
        r#"{"type":"start","call_id":"c-1","tenant":"globex"}"#,
    )
    .await;
    let err = next_text(&mut ws).await;
    assert!(
        err.contains("\"code\":\"forbidden\"") && err.contains("start.tenant"),
        "{err}"
    );
    assert_eq!(close_code(&mut ws).await, Some(1008));

    let (_, metrics) = http(s.addr, "GET", "/metrics", &[]).await;
    assert_metric(&metrics, "keel_errors_total{code=\"unauthorized\"} 2");
    assert_metric(&metrics, "keel_errors_total{code=\"forbidden\"} 2");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_reach_each_others_calls() {
    let s = serve(config(), product_lexicon(), None).await;
    let acme = [("authorization", bearer(ACME_KEY))];
    let acme: Vec<(&str, &str)> = acme.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let globex = [("authorization", bearer(GLOBEX_KEY))];
    let globex: Vec<(&str, &str)> = globex.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Both tenants use the call id "c-same": they are two different calls.
    let mut globex_feed = open(s.addr, "/v1/calls/c-same/nudges", &globex)
        .await
        .unwrap();
    let mut a = open(s.addr, "/v1/calls/c-same/stream", &acme)
        .await
        .unwrap();
    next_text(&mut a).await;
    send(&mut a, ANGRY).await;
    until(&mut a, "{\"type\":\"nudge\"").await;
    send(&mut a, r#"{"type":"end","reason":"completed"}"#).await;
    let record = until(&mut a, "{\"type\":\"record\"").await;
    assert!(
        record.contains("\"tenant\":\"acme\""),
        "the key's tenant is the call's: {record}"
    );

    let (code, body) = http(s.addr, "GET", "/v1/calls/c-same/record", &acme).await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = http(s.addr, "GET", "/v1/calls/c-same/record", &globex).await;
    assert_eq!(code, 404, "globex has no call c-same");
    let (code, _) = http(s.addr, "GET", "/v1/calls/c-same/record", &[]).await;
    assert_eq!(code, 401);

    // globex's feed of its own c-same saw nothing of acme's call.
    let nothing = tokio::time::timeout(Duration::from_millis(300), globex_feed.next()).await;
    assert!(nothing.is_err(), "globex's feed stays silent: {nothing:?}");

    // globex's supervisor feed does not see acme's alerts.
    let mut globex_alerts = open(s.addr, "/v1/supervisor/alerts", &globex)
        .await
        .unwrap();
    let mut acme_alerts = open(s.addr, "/v1/supervisor/alerts", &acme).await.unwrap();
    let mut a = open(s.addr, "/v1/calls/c-threat/stream", &acme)
        .await
        .unwrap();
    next_text(&mut a).await;
    send(
        &mut a,
        r#"{"type":"transcript","segment_id":"s-1","speaker":"customer","text":"I know where you live and I will hurt you","is_final":true,"start_ms":0,"end_ms":2000}"#,
    )
    .await;
    let alert = next_text(&mut acme_alerts).await;
    assert!(alert.contains("\"call_id\":\"c-threat\""), "{alert}");
    let nothing = tokio::time::timeout(Duration::from_millis(300), globex_alerts.next()).await;
    assert!(
        nothing.is_err(),
        "globex sees none of acme's alerts: {nothing:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_feeds_take_a_short_lived_token_for_their_call() {
    let s = serve(config(), product_lexicon(), None).await;
    let key = bearer(ACME_KEY);
    // The platform mints a token with its key.
    let (code, _) = mint_request(s.addr, "", &[]).await;
    assert_eq!(code, 401);
    let (code, body) = mint_request(s.addr, "?ttl=100h", &[("authorization", &key)]).await;
    assert_eq!(code, 400, "longer than the maximum: {body}");
    assert!(body.contains("ttl"), "{body}");
    let (code, body) = mint_request(s.addr, "?ttl=5m", &[("authorization", &key)]).await;
    assert_eq!(code, 200, "{body}");
    let minted: serde_json::Value = serde_json::from_str(&body).unwrap();
    let protocol = minted["protocol"].as_str().unwrap().to_string();
    assert!(protocol.starts_with("keel.token."), "{minted}");
    assert_eq!(minted["tenant"], "acme");
    let exp = minted["expires_at"].as_u64().unwrap();
    assert!(
        (now_secs() + 290..=now_secs() + 301).contains(&exp),
        "{minted}"
    );

    // The browser's way: the token as a subprotocol beside keel.v1, which keel selects.
    let offered = format!("keel.v1, {protocol}");
    let headers = [
        ("sec-websocket-protocol", offered.as_str()),
        ("origin", "https://agents.acme.example"),
    ];
    let (mut feed, resp) = connect_async(request(s.addr, "/v1/calls/c-w/nudges", &headers))
        .await
        .expect("a valid token opens the feed");
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "keel.v1"
    );
    let mut a = open(s.addr, "/v1/calls/c-w/stream", &[("authorization", &key)])
        .await
        .unwrap();
    next_text(&mut a).await;
    send(&mut a, ANGRY).await;
    let nudge = until(&mut a, "{\"type\":\"nudge\"").await;
    assert!(next_text(&mut feed)
        .await
        .starts_with("{\"type\":\"snapshot\""));
    assert_eq!(
        next_text(&mut feed).await,
        nudge,
        "the feed carries the call's nudge"
    );

    // Refusals: no token, a token for another call, another tenant's token, an expired
    // token, a token signed with another secret, a page from an origin not allowed.
    let (code, body) = open(s.addr, "/v1/calls/c-w/nudges", &[])
        .await
        .err()
        .unwrap();
    assert_eq!(code, 401, "{body}");
    let other_call = token(SECRET, "acme", "c-other", 60, now_secs());
    let proto = format!("keel.token.{other_call}");
    let (code, body) = feed_with(s.addr, "c-w", &proto).await.expect_err("refused");
    assert_eq!((code, body.contains("another call")), (403, true), "{body}");
    // globex's token for its own c-w opens globex's c-w, not acme's: it sees nothing.
    let globex_token = token(SECRET, "globex", "c-w", 60, now_secs());
    let proto = format!("keel.token.{globex_token}");
    let mut foreign = feed_with(s.addr, "c-w", &proto).await.unwrap();
    send(&mut a, r#"{"type":"transcript","segment_id":"s-2","speaker":"customer","text":"you useless idiot","is_final":true,"start_ms":3000,"end_ms":4000}"#).await;
    until(&mut a, "{\"type\":\"boundary\"").await;
    let nothing = tokio::time::timeout(Duration::from_millis(300), foreign.next()).await;
    assert!(
        nothing.is_err(),
        "another tenant's token never reads acme's call: {nothing:?}"
    );
    let expired = token(SECRET, "acme", "c-w", 1, now_secs() - 10);
    let proto = format!("keel.token.{expired}");
    let (code, body) = feed_with(s.addr, "c-w", &proto).await.expect_err("refused");
    assert_eq!((code, body.contains("expired")), (401, true), "{body}");
    let forged = mint(
        b"not the server's secret, at all!",
        "acme",
        &Scope::Call("c-w".into()),
        Duration::from_secs(60),
        now_secs(),
    );
    let proto = format!("keel.token.{forged}");
    let (code, body) = feed_with(s.addr, "c-w", &proto).await.expect_err("refused");
    assert_eq!((code, body.contains("signature")), (401, true), "{body}");
    let bad_origin = [
        ("sec-websocket-protocol", offered.as_str()),
        ("origin", "https://evil.example"),
    ];
    let (code, body) = open(s.addr, "/v1/calls/c-w/nudges", &bad_origin)
        .await
        .err()
        .unwrap();
    assert_eq!((code, body.contains("origin")), (403, true), "{body}");
    let (_, metrics) = http(s.addr, "GET", "/metrics", &[]).await;
    assert_metric(&metrics, "keel_errors_total{code=\"bad_origin\"} 1");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_held_to_its_connection_cap() {
    let s = serve(config(), product_lexicon(), None).await;
    let key = bearer(GLOBEX_KEY);
    let h = [("authorization", key.as_str())];
    let first = open(s.addr, "/v1/calls/c-1/stream", &h).await.unwrap();
    let _second = open(s.addr, "/v1/supervisor/alerts", &h).await.unwrap();
    let (code, body) = open(s.addr, "/v1/calls/c-2/stream", &h)
        .await
        .expect_err("over the cap");
    assert_eq!(code, 429, "{body}");
    // Another tenant is not affected.
    let acme = bearer(ACME_KEY);
    open(s.addr, "/v1/calls/c-2/stream", &[("authorization", &acme)])
        .await
        .unwrap();
    // A closed connection frees its place.
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(ws) = open(s.addr, "/v1/calls/c-3/stream", &h).await {
            reopened = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reopened.is_some(), "the cap counts open connections only");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_after_the_idle_timeout() {
    let cfg = ServerConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..Default::default()
    };
    let s = serve(cfg, product_lexicon(), None).await;
    // This client reads (and so answers pings) all along: it stays.
    let mut lively = open(s.addr, "/v1/calls/c-live/stream", &[]).await.unwrap();
    // This one reads nothing: it never answers a ping.
    let mut silent = open(s.addr, "/v1/calls/c-silent/stream", &[])
        .await
        .unwrap();
    let stays = tokio::time::timeout(Duration::from_millis(1200), async {
        loop {
            match lively.next().await {
                Some(Ok(Message::Close(f))) => return f,
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await;
    assert!(
        stays.is_err(),
        "a client answering pings is kept: {stays:?}"
    );
    assert_eq!(close_code(&mut silent).await, Some(1001));
    s.stop().await;
}

fn lexicon_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("test.toml"), TEST_LEXICON).unwrap();
    std::fs::copy(
        root().join("lexicons/en/modifiers.toml"),
        dir.join("modifiers.toml"),
    )
    .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_reaches_new_calls_while_running_calls_keep_their_set() {
    let dir = lexicon_dir("reload");
    let lex = std::sync::Arc::new(Lexicon::load(&dir).unwrap());
    let old_version = lex.version.clone();
    let s = serve(config(), lex, Some(dir.clone())).await;
    let key = bearer(ACME_KEY);
    let admin = bearer(ADMIN_KEY);
    let h = [("authorization", key.as_str())];
    let phrase = r#"{"type":"transcript","segment_id":"s-1","speaker":"customer","text":"this is an absolute disgrace","is_final":true,"start_ms":0,"end_ms":2000}"#;

    let mut running = open(s.addr, "/v1/calls/c-old/stream", &h).await.unwrap();
    next_text(&mut running).await;

    // The new set names a new frustration phrase.
    let src = TEST_LEXICON.replace(
        r#"entries = ["this is ridiculous","#,
        r#"entries = ["absolute disgrace", "this is ridiculous","#,
    );
    assert_ne!(src, TEST_LEXICON);
    std::fs::write(dir.join("test.toml"), &src).unwrap();
    let (code, _) = http(s.addr, "POST", "/v1/admin/reload", &h).await;
    assert_eq!(code, 401, "a tenant's key is not the admin key");
    let (code, body) = reload(s.addr, &admin).await;
    assert_eq!(code, 200, "{body}");
    let new_version = s.app.lexicon().version.clone();
    assert_ne!(new_version, old_version);
    assert!(body.contains(&new_version), "{body}");

    // The running call keeps its set: the new phrase means nothing to it.
    send(&mut running, phrase).await;
    send(&mut running, r#"{"type":"end","reason":"completed"}"#).await;
    let replies = {
        let mut got = Vec::new();
        loop {
            let t = next_text(&mut running).await;
            let done = t.starts_with("{\"type\":\"record\"");
            got.push(t);
            if done {
                break got;
            }
        }
    };
    assert!(
        !replies.iter().any(|r| r.contains("validate_feelings")),
        "{replies:?}"
    );
    assert!(replies.last().unwrap().contains(&old_version));
    // A new call gets the new set.
    let mut fresh = open(s.addr, "/v1/calls/c-new/stream", &h).await.unwrap();
    next_text(&mut fresh).await;
    send(&mut fresh, phrase).await;
    let nudge = next_text(&mut fresh).await;
    assert!(nudge.contains("validate_feelings"), "{nudge}");

    // An invalid set is refused, its errors named, and the running set kept.
    std::fs::write(
        dir.join("test.toml"),
        "[[category]]\nid = \"broken\"\nspeaker = \"nobody\"\n",
    )
    .unwrap();
    let (code, body) = reload(s.addr, &admin).await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("test.toml"),
        "the error names the file: {body}"
    );
    assert_eq!(s.app.lexicon().version, new_version);
    let (_, ready) = http(s.addr, "GET", "/readyz", &[]).await;
    assert!(ready.contains(&new_version), "{ready}");
    let (_, metrics) = http(s.addr, "GET", "/metrics", &[]).await;
    assert_metric(&metrics, "keel_lexicon_reloads_total{result=\"refused\"} 1");
    // The running call is unaffected by the refused reload.
    send(&mut fresh, r#"{"type":"end","reason":"completed"}"#).await;
    let record = until(&mut fresh, "{\"type\":\"record\"").await;
    assert!(record.contains(&new_version), "{record}");
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_open_calls_their_records_and_closes() {
    let s = serve(config(), product_lexicon(), None).await;
    let key = bearer(ACME_KEY);
    let h = [("authorization", key.as_str())];
    let mut ws = open(s.addr, "/v1/calls/c-open/stream", &h).await.unwrap();
    next_text(&mut ws).await;
    let token = s
        .app
        .widget_token("acme", "c-open", Duration::from_secs(60));
    let proto = format!("keel.token.{token}");
    let mut feed = feed_with(s.addr, "c-open", &proto).await.unwrap();
    send(&mut ws, ANGRY).await;
    until(&mut ws, "{\"type\":\"nudge\"").await;
    let app = s.app.clone();
    s.stop.send(()).unwrap();
    // The platform and the feed both get the record, then a 1001 close.
    let record = until(&mut ws, "{\"type\":\"record\"").await;
    assert!(record.contains("\"end_reason\":\"dropped\""), "{record}");
    assert_eq!(close_code(&mut ws).await, Some(1001));
    assert_eq!(until(&mut feed, "{\"type\":\"record\"").await, record);
    assert_eq!(close_code(&mut feed).await, Some(1001));
    tokio::time::timeout(Duration::from_secs(20), s.handle)
        .await
        .expect("the server stops within its deadline")
        .unwrap();
    assert!(app.record_of("acme", "c-open").is_some());
}

/// A store that remembers what it was given, and can be made to fail.
#[derive(Default)]
struct Recording {
    puts: std::sync::Mutex<Vec<(String, String)>>,
    broken: std::sync::atomic::AtomicBool,
}

impl keel::server::store::RecordStore for Recording {
    fn put(
        &self,
        tenant: &str,
        call_id: &str,
        _record: &keel::protocol::CallRecord,
    ) -> Result<(), keel::server::store::StoreError> {
        if self.broken.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(keel::server::store::StoreError("disk full".into()));
        }
        self.puts
            .lock()
            .unwrap()
            .push((tenant.to_string(), call_id.to_string()));
        Ok(())
    }

    fn get(
        &self,
        _tenant: &str,
        _call_id: &str,
    ) -> Result<Option<keel::protocol::CallRecord>, keel::server::store::StoreError> {
        Err(keel::server::store::StoreError("disk full".into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_go_to_the_store_and_a_failing_store_loses_no_call() {
    let store = std::sync::Arc::new(Recording::default());
    let s = serve_app(App::with_store(
        product_lexicon(),
        None,
        Policy::default(),
        config(),
        SECRET.to_vec(),
        store.clone(),
    ))
    .await;
    let addr = s.addr;
    let key = bearer(ACME_KEY);
    let h = [("authorization", key.as_str())];
    for (call, broken) in [("c-kept", false), ("c-failed", true)] {
        store
            .broken
            .store(broken, std::sync::atomic::Ordering::Relaxed);
        let mut ws = open(addr, &format!("/v1/calls/{call}/stream"), &h)
            .await
            .unwrap();
        next_text(&mut ws).await;
        send(&mut ws, ANGRY).await;
        send(&mut ws, r#"{"type":"end","reason":"completed"}"#).await;
        // The platform gets the record whether or not the store kept it.
        let record = until(&mut ws, "{\"type\":\"record\"").await;
        assert!(
            record.contains(&format!("\"call_id\":\"{call}\"")),
            "{record}"
        );
    }
    assert_eq!(
        *store.puts.lock().unwrap(),
        vec![("acme".to_string(), "c-kept".to_string())]
    );
    let (code, _) = http(addr, "GET", "/v1/calls/c-kept/record", &h).await;
    assert_eq!(code, 503, "a store that cannot read answers 503, not 404");
    let (_, metrics) = http(addr, "GET", "/metrics", &[]).await;
    assert_metric(&metrics, "keel_errors_total{code=\"record_store\"} 1");
    s.stop().await;
}
