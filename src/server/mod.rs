//! `keel serve`: the engine on the network, as `protocol.md` describes it. Plumbing only:
//! routing, auth, limits, the per-call hub and fan-out to feeds; every coaching decision
//! is the engine's ([`crate::coach::Session`]).
//!
//! - `GET /v1/calls/{call_id}/stream`: the platform's websocket (API key). keel answers
//!   `session` first, then every coaching message its transcript messages cause
//!   (`?ack=true` adds an `ack` after each processed transcript that carries `seq`).
//! - `GET /v1/calls/{call_id}/nudges`: a widget's feed (widget token, or the API key):
//!   `snapshot`, then the live messages. A feed opened before its call starts waits for
//!   the call; when the call ends the feed closes (1000) after its record.
//! - `POST /v1/calls/{call_id}/widget-token[?ttl=10m]`: mints a widget token (API key).
//! - `GET /v1/calls/{call_id}/record`: the call record (API key; 404 until the call ended).
//! - `GET /v1/supervisor/alerts`: the tenant's critical events (boundary transitions,
//!   critical nudges, escalations), each with the `call_id` it belongs to.
//! - `POST /v1/admin/reload`: reloads the lexicon set (admin key).
//! - `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /widget/`.
//!
//! Calls are keyed by tenant and call id: a tenant cannot reach another's call, whatever
//! id it names. A second platform connection for a call takes over from the first (which
//! is closed with 1008: it may be half-open after a network fault). A `start` naming
//! another call than the URL, or a binary frame, gets an `error` and changes nothing. A platform connection that drops leaves its call open for a grace period
//! (default 120 s): reconnecting to the same URL resumes it (`session` says `resumed`
//! and `last_seq`); after the grace period the call ends as `dropped` and its record is
//! produced. Every connection is pinged; one that stays silent past the idle timeout is
//! closed (1001). Shutdown ends every open call (its record is produced and sent), closes
//! the connections (1001), and waits at most the shutdown deadline.

pub mod auth;
pub mod client;
pub mod config;
pub mod store;
pub mod telemetry;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::adapters::{Adapter, Channels, Format};
use crate::coach::{Policy, Session};
use crate::lexicon::Lexicon;
use crate::protocol::{self, CallRecord, EndReason, Inbound, Outbound, SessionState};
pub use auth::DEFAULT_TENANT;
use auth::{Auth, Denied, Scope};
pub use config::ServerConfig;
use store::{MemoryStore, RecordStore};
use telemetry::{Endpoint, Event, Telemetry};

/// Largest websocket message and frame keel accepts (bytes).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Messages a feed may fall behind before it is disconnected.
pub const FEED_QUEUE: usize = 256;
/// Alerts a supervisor feed may fall behind before it is disconnected.
pub const ALERT_QUEUE: usize = 1024;
/// Messages keel may queue for a platform connection outside its own replies (the end
/// of a call at shutdown).
const PLATFORM_QUEUE: usize = 256;
/// Longest call id keel accepts (bytes).
pub const MAX_CALL_ID: usize = 256;

/// A queue to one connection; a reader too slow to keep up is cut off.
struct Feed {
    tx: mpsc::Sender<Arc<str>>,
    slow: Arc<AtomicBool>,
}

/// One call: its session (once the platform has connected), its feeds.
#[derive(Default)]
struct Call {
    session: Option<Session>,
    feeds: Vec<Feed>,
    /// The platform connection's queue, while one is connected.
    platform: Option<mpsc::Sender<Arc<str>>>,
    /// Cancels the connected platform connection: a newer one for the same call takes
    /// over (the older may be half-open, its drop not yet noticed).
    platform_cancel: Option<CancellationToken>,
    last_seq: u64,
    /// Counts platform connections: a grace timer ends the call only if no newer
    /// connection came.
    generation: u64,
}

impl Call {
    /// Sends a message to every feed; a feed whose queue is full is dropped.
    fn fan_out(&mut self, line: &Arc<str>) {
        self.feeds
            .retain(|f| match f.tx.try_send(Arc::clone(line)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    f.slow.store(true, Ordering::Relaxed);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }

    fn ended(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.is_ended())
    }
}

/// The last snapshots of the most recently ended calls, oldest forgotten first.
#[derive(Default)]
struct Ended {
    snapshots: HashMap<String, Arc<str>>,
    order: std::collections::VecDeque<String>,
}

/// Ended calls whose last snapshot a late widget can still get.
const ENDED_KEPT: usize = 10_000;

impl Ended {
    fn insert(&mut self, key: &str, snapshot: Arc<str>) {
        if self.snapshots.insert(key.to_string(), snapshot).is_none() {
            self.order.push_back(key.to_string());
        }
        while self.order.len() > ENDED_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.snapshots.remove(&old);
            }
        }
    }

    fn get(&self, key: &str) -> Option<&Arc<str>> {
        self.snapshots.get(key)
    }
}

struct Inner {
    lexicon: RwLock<Arc<Lexicon>>,
    lexicon_dir: Option<PathBuf>,
    policy: Policy,
    cfg: ServerConfig,
    auth: Auth,
    calls: Mutex<HashMap<String, Arc<Mutex<Call>>>>,
    /// Critical events of every call (tenant, line), for the supervisor feeds.
    alerts: tokio::sync::broadcast::Sender<(Arc<str>, Arc<str>)>,
    records: Arc<dyn RecordStore>,
    /// The last snapshot of each ended call, for a widget that opens its feed late.
    final_snapshots: Mutex<Ended>,
    telemetry: Telemetry,
    /// Open websocket connections per tenant.
    connections: Mutex<HashMap<String, usize>>,
    shutdown: CancellationToken,
    /// Set as shutdown begins, before the calls are ended (and before `shutdown` is
    /// cancelled): a feed closed by its call's end then knows it is the server stopping.
    stopping: AtomicBool,
    tasks: TaskTracker,
}

/// The server's shared state.
#[derive(Clone)]
pub struct App(Arc<Inner>);

/// A connection counted against its tenant's cap; uncounted when dropped.
struct Slot {
    app: App,
    tenant: String,
    endpoint: Endpoint,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(n) = self
            .app
            .0
            .connections
            .lock()
            .expect("connections lock")
            .get_mut(&self.tenant)
        {
            *n = n.saturating_sub(1);
        }
        self.app.0.telemetry.emit(Event::ConnectionClosed {
            endpoint: self.endpoint,
            tenant: &self.tenant,
            why: "closed",
        });
    }
}

/// A refused request: its status and a plain-text reason.
fn deny(app: &App, endpoint: &'static str, d: Denied) -> Response {
    app.0.telemetry.emit(Event::Rejected {
        endpoint,
        code: d.code,
        status: d.status,
    });
    let status = StatusCode::from_u16(d.status).unwrap_or(StatusCode::FORBIDDEN);
    (status, format!("{}\n", d.reason)).into_response()
}

fn key(tenant: &str, call_id: &str) -> String {
    format!("{tenant}/{call_id}")
}

impl App {
    /// A server on the embedded defaults: no tenants, the default timeouts, a token
    /// secret of its own (random, for this process only).
    pub fn new(lexicon: Arc<Lexicon>, policy: Policy) -> App {
        let secret = auth::new_key().expect("random secret").into_bytes();
        App::with_config(lexicon, None, policy, ServerConfig::default(), secret)
    }

    /// A server with the `[server]` configuration `cfg`, signing widget tokens with
    /// `secret`. `lexicon_dir` is where reloads read the lexicon set from.
    pub fn with_config(
        lexicon: Arc<Lexicon>,
        lexicon_dir: Option<PathBuf>,
        policy: Policy,
        cfg: ServerConfig,
        secret: Vec<u8>,
    ) -> App {
        App::with_store(
            lexicon,
            lexicon_dir,
            policy,
            cfg,
            secret,
            Arc::new(MemoryStore::default()),
        )
    }

    /// As [`App::with_config`], with records going to `records`.
    pub fn with_store(
        lexicon: Arc<Lexicon>,
        lexicon_dir: Option<PathBuf>,
        policy: Policy,
        cfg: ServerConfig,
        secret: Vec<u8>,
        records: Arc<dyn RecordStore>,
    ) -> App {
        App(Arc::new(Inner {
            lexicon: RwLock::new(lexicon),
            lexicon_dir,
            policy,
            auth: Auth::new(&cfg, secret),
            cfg,
            calls: Mutex::new(HashMap::new()),
            alerts: tokio::sync::broadcast::channel(ALERT_QUEUE).0,
            records,
            final_snapshots: Mutex::new(Ended::default()),
            telemetry: Telemetry::default(),
            connections: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            stopping: AtomicBool::new(false),
            tasks: TaskTracker::new(),
        }))
    }

    /// The lexicon set new calls get.
    pub fn lexicon(&self) -> Arc<Lexicon> {
        Arc::clone(&self.0.lexicon.read().expect("lexicon lock"))
    }

    /// The record of an ended call of the default tenant (no tenants configured).
    pub fn record(&self, call_id: &str) -> Option<CallRecord> {
        self.record_of(DEFAULT_TENANT, call_id)
    }

    /// The record of a tenant's ended call.
    pub fn record_of(&self, tenant: &str, call_id: &str) -> Option<CallRecord> {
        match self.0.records.get(tenant, call_id) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(event = "record_store_failed", tenant, call_id, error = %e);
                None
            }
        }
    }

    /// Mints a widget token for one call of a tenant, valid for `ttl`.
    pub fn widget_token(&self, tenant: &str, call_id: &str, ttl: Duration) -> String {
        auth::mint(
            self.0.auth.secret(),
            tenant,
            &Scope::Call(call_id.to_string()),
            ttl,
            auth::now_secs(),
        )
    }

    /// Reloads the lexicon set from its folder: new calls get the new set, running calls
    /// keep theirs. An invalid set is refused (its errors are returned and logged) and
    /// the old one stays. Returns the new version.
    pub async fn reload(&self) -> Result<String, String> {
        let Some(dir) = self.0.lexicon_dir.clone() else {
            return Err("this server has no lexicon folder to reload from".into());
        };
        let loaded = tokio::task::spawn_blocking(move || Lexicon::load(&dir))
            .await
            .map_err(|e| format!("reload failed: {e}"))?;
        match loaded {
            Ok(lex) => {
                let version = lex.version.clone();
                *self.0.lexicon.write().expect("lexicon lock") = Arc::new(lex);
                self.0
                    .telemetry
                    .emit(Event::LexiconReloaded { version: &version });
                Ok(version)
            }
            Err(e) => {
                let errors = e.to_string();
                self.0
                    .telemetry
                    .emit(Event::LexiconRefused { errors: &errors });
                Err(errors)
            }
        }
    }

    /// Drops a call from the hub once it has ended (its record and final snapshot stay),
    /// or once nothing waits for a call that never started: memory does not grow with
    /// the number of calls served.
    fn forget(&self, tenant: &str, call_id: &str, call: &Arc<Mutex<Call>>) {
        let k = key(tenant, call_id);
        let mut calls = self.0.calls.lock().expect("calls lock");
        if !calls.get(&k).is_some_and(|c| Arc::ptr_eq(c, call)) {
            return;
        }
        let c = call.lock().expect("call lock");
        if c.ended() {
            if let Some(s) = &c.session {
                let snap = snapshot_line(s);
                self.0
                    .final_snapshots
                    .lock()
                    .expect("records lock")
                    .insert(&k, snap);
            }
        } else if c.session.is_some() || !c.feeds.is_empty() || c.platform.is_some() {
            return;
        }
        drop(c);
        calls.remove(&k);
    }

    fn call(&self, key: &str) -> Arc<Mutex<Call>> {
        let mut calls = self.0.calls.lock().expect("calls lock");
        Arc::clone(calls.entry(key.to_string()).or_default())
    }

    /// Counts a connection against its tenant's cap, or refuses it.
    fn slot(&self, tenant: &str, endpoint: Endpoint) -> Result<Slot, Denied> {
        let cap = self
            .0
            .cfg
            .tenants
            .get(tenant)
            .and_then(|t| t.max_connections)
            .unwrap_or(self.0.cfg.max_connections_per_tenant);
        let mut conns = self.0.connections.lock().expect("connections lock");
        let n = conns.entry(tenant.to_string()).or_default();
        if *n >= cap {
            return Err(Denied {
                status: 429,
                code: "too_many_connections",
                reason: format!("tenant {tenant} has {cap} connections open, its limit"),
            });
        }
        *n += 1;
        drop(conns);
        self.0
            .telemetry
            .emit(Event::ConnectionOpened { endpoint, tenant });
        Ok(Slot {
            app: self.clone(),
            tenant: tenant.to_string(),
            endpoint,
        })
    }

    /// Ends every open call (server shutdown): their records are produced, stored and
    /// sent; feeds are told the call ended and then closed.
    pub fn end_all(&self, reason: EndReason) {
        let calls: Vec<(String, Arc<Mutex<Call>>)> = self
            .0
            .calls
            .lock()
            .expect("calls lock")
            .iter()
            .map(|(k, c)| (k.clone(), Arc::clone(c)))
            .collect();
        for (key, call) in calls {
            let mut c = call.lock().expect("call lock");
            let (tenant, call_id) = key.split_once('/').unwrap_or((DEFAULT_TENANT, &key));
            self.end_call(&mut c, tenant, call_id, reason);
            c.feeds.clear();
        }
    }

    /// Ends one call unless it has ended; its outputs go to its platform queue and feeds.
    fn end_call(&self, c: &mut Call, tenant: &str, call_id: &str, reason: EndReason) {
        let outputs = match c.session.as_mut() {
            Some(s) if !s.is_ended() => s.feed(&Inbound::End(protocol::End { reason })),
            _ => return,
        };
        for o in &outputs {
            let line = self.publish(c, tenant, call_id, o);
            if let Some(p) = &c.platform {
                let _ = p.try_send(line);
            }
        }
    }

    /// Observes one of a call's outputs and fans it out to the call's feeds; returns
    /// its wire line (for the platform connection).
    fn publish(&self, c: &mut Call, tenant: &str, call_id: &str, o: &Outbound) -> Arc<str> {
        self.observe(tenant, call_id, o);
        let line: Arc<str> = protocol::encode(o).into();
        c.fan_out(&line);
        line
    }

    /// Observes an `error` for the platform connection and returns its wire line.
    fn error_line(&self, tenant: &str, call_id: &str, err: Outbound) -> String {
        self.observe(tenant, call_id, &err);
        protocol::encode(&err)
    }

    /// Counts an output, keeps records, and passes critical events to supervisors.
    fn observe(&self, tenant: &str, call_id: &str, o: &Outbound) {
        if is_critical(o) {
            let mut v = serde_json::to_value(o).expect("wire types serialise");
            v["call_id"] = serde_json::Value::String(call_id.to_string());
            let _ = self.0.alerts.send((tenant.into(), v.to_string().into()));
        }
        let t = &self.0.telemetry;
        match o {
            Outbound::Nudge(n) => t.emit(Event::Nudge {
                kind: n.kind.as_str(),
            }),
            Outbound::Boundary(b) => t.emit(Event::Boundary {
                state: b.state.as_str(),
            }),
            Outbound::Error(e) => t.emit(Event::Error {
                code: error_code(&e.code),
            }),
            Outbound::Record(r) => {
                t.emit(Event::CallEnded {
                    tenant,
                    call_id,
                    reason: r.record.end_reason.as_str(),
                });
                // Records are kept under the call id of the URL, which names the call.
                if let Err(e) = self.0.records.put(tenant, call_id, &r.record) {
                    t.emit(Event::Error {
                        code: "record_store",
                    });
                    tracing::error!(event = "record_store_failed", tenant, call_id, error = %e);
                }
            }
            _ => {}
        }
    }
}

/// Error codes as static strings for the metrics (unknown ones are counted as `other`).
fn error_code(code: &str) -> &'static str {
    match code {
        "bad_message" => "bad_message",
        "forbidden" => "forbidden",
        "call_ended" => "call_ended",
        _ => "other",
    }
}

/// The router of every endpoint.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/v1/calls/{call_id}/stream", get(stream))
        .route("/v1/calls/{call_id}/nudges", get(nudges))
        .route("/v1/calls/{call_id}/widget-token", post(widget_token))
        .route("/v1/calls/{call_id}/record", get(record))
        .route("/v1/supervisor/alerts", get(alerts))
        .route("/v1/admin/reload", post(admin_reload))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/widget/", get(widget))
        .with_state(app)
}

/// Serves on an already-bound listener until `shutdown` completes; then ends the open
/// calls (their records are produced and sent), closes every connection, and waits for
/// them at most the configured shutdown deadline.
pub async fn run(
    listener: TcpListener,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let stopper = app.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!(event = "shutdown_started");
        // Every call's end is queued before any connection is told to close.
        stopper.0.stopping.store(true, Ordering::SeqCst);
        stopper.end_all(EndReason::Dropped);
        stopper.0.shutdown.cancel();
    };
    let result = axum::serve(listener, service)
        .with_graceful_shutdown(signal)
        .await;
    app.0.tasks.close();
    if tokio::time::timeout(app.0.cfg.shutdown_deadline, app.0.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(event = "shutdown_deadline_passed", open = app.0.tasks.len());
    }
    // Calls that were waiting for their platform, or opened while stopping.
    app.end_all(EndReason::Dropped);
    tracing::info!(event = "shutdown_finished");
    result
}

#[derive(Deserialize)]
struct StreamQuery {
    #[serde(default)]
    ack: bool,
    /// The input adapter (default `native`).
    format: Option<String>,
    /// Channel-to-role map (`customer,agent`), for formats that label channels.
    channels: Option<String>,
}

impl StreamQuery {
    /// The input adapter the query asks for.
    fn adapter(&self) -> Result<Adapter, Denied> {
        let bad = |reason: String| Denied {
            status: 400,
            code: "bad_request",
            reason,
        };
        let format = match self.format.as_deref() {
            None => Format::Native,
            Some(f) => Format::parse(f).map_err(|e| bad(format!("format: {e}")))?,
        };
        let channels = match self.channels.as_deref() {
            None => None,
            Some(_) if format.has_roles() => {
                return Err(bad(format!(
                    "channels: the format {:?} labels speakers itself; a channel map applies to channel-labelled formats",
                    self.format.as_deref().unwrap_or("native")
                )))
            }
            Some(c) => Some(Channels::parse(c).map_err(|e| bad(format!("channels: {e}")))?),
        };
        Ok(Adapter::new(format, channels))
    }
}

fn check_call_id(call_id: &str) -> Result<(), Denied> {
    if call_id.is_empty() || call_id.len() > MAX_CALL_ID {
        return Err(Denied {
            status: 400,
            code: "bad_request",
            reason: format!("call_id: 1 to {MAX_CALL_ID} bytes"),
        });
    }
    Ok(())
}

async fn stream(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    Path(call_id): Path<String>,
    Query(q): Query<StreamQuery>,
    State(app): State<App>,
) -> Response {
    let adapter = match check_call_id(&call_id).and_then(|()| q.adapter()) {
        Ok(a) => a,
        Err(d) => return deny(&app, "stream", d),
    };
    let tenant = app
        .0
        .auth
        .origin(&headers)
        .and_then(|()| app.0.auth.platform(&headers));
    let ack = q.ack;
    open_socket(
        ws,
        &headers,
        app,
        Endpoint::Stream,
        tenant,
        move |socket, app, tenant| async move {
            platform(socket, &app, &tenant, call_id, ack, adapter).await
        },
    )
}

/// Opens an admitted websocket (`tenant` is the admission's verdict): counts it against
/// its tenant's cap, sets the size limits, answers the subprotocol, and runs `serve` on
/// it as a task that shutdown waits for.
fn open_socket<F, Fut>(
    ws: WebSocketUpgrade,
    headers: &HeaderMap,
    app: App,
    endpoint: Endpoint,
    tenant: Result<String, Denied>,
    serve: F,
) -> Response
where
    F: FnOnce(WebSocket, App, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let admitted = tenant.and_then(|t| app.slot(&t, endpoint).map(|slot| (t, slot)));
    let (tenant, slot) = match admitted {
        Ok(t) => t,
        Err(d) => return deny(&app, endpoint.as_str(), d),
    };
    let tasks = app.0.tasks.clone();
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .protocols(auth::answer_protocols(headers))
        .on_upgrade(move |socket| {
            tasks.track_future(async move {
                serve(socket, app, tenant).await;
                drop(slot);
            })
        })
}

/// Why a connection loop ended.
enum Exit {
    /// The peer closed or the socket failed.
    Gone,
    /// The server is shutting down.
    Shutdown,
    /// Nothing heard from the peer within the idle timeout.
    Idle,
    /// Ended by keel with this close frame already sent.
    Closed,
}

/// Keeps a connection alive: a ping every interval; silence past the idle timeout ends it.
struct Liveness {
    ping: tokio::time::Interval,
    heard: Instant,
    idle: Duration,
}

impl Liveness {
    fn new(app: &App) -> Liveness {
        let every = app.0.cfg.ping_interval;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Liveness {
            ping,
            heard: Instant::now(),
            idle: app.0.cfg.idle_timeout,
        }
    }

    /// Waits until the next ping is due.
    async fn due(&mut self) {
        self.ping.tick().await;
    }

    /// Pings the peer; false when it has been silent too long (or the socket failed).
    async fn ping(&self, socket: &mut WebSocket) -> bool {
        if self.heard.elapsed() >= self.idle {
            return false;
        }
        socket
            .send(Message::Ping(axum::body::Bytes::from_static(b"keel")))
            .await
            .is_ok()
    }
}

/// How long keel waits for a peer to answer its close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Closes a connection with a code and reason, and waits (briefly) for the peer's
/// answering close: dropping a socket with unread data would reset it, and the peer
/// could lose the close frame and the messages before it.
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let sent = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
    if sent.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn send(socket: &mut WebSocket, line: &str) -> bool {
    socket
        .send(Message::Text(line.to_string().into()))
        .await
        .is_ok()
}

async fn platform(
    mut socket: WebSocket,
    app: &App,
    tenant: &str,
    call_id: String,
    ack: bool,
    mut adapter: Adapter,
) {
    if app.record_of(tenant, &call_id).is_some() {
        // The call has ended: a reconnect must not start it over.
        let err = Outbound::Error(protocol::ErrorMsg {
            code: "call_ended".into(),
            message: format!(
                "call_id: call {call_id} has ended; its record is at /v1/calls/{call_id}/record"
            ),
            at_ms: None,
        });
        let _ = send(&mut socket, &app.error_line(tenant, &call_id, err)).await;
        close(&mut socket, 1008, "call ended").await;
        return;
    }
    let call = app.call(&key(tenant, &call_id));
    let (out_tx, mut out_rx) = mpsc::channel::<Arc<str>>(PLATFORM_QUEUE);
    let replaced = CancellationToken::new();
    let (hello, generation) = {
        let mut c = call.lock().expect("call lock");
        c.generation += 1;
        c.platform = Some(out_tx);
        if let Some(old) = c.platform_cancel.replace(replaced.clone()) {
            old.cancel();
        }
        let state = if c.session.is_some() {
            SessionState::Resumed
        } else {
            SessionState::New
        };
        match &c.session {
            Some(_) => app.0.telemetry.emit(Event::CallResumed {
                tenant,
                call_id: &call_id,
                last_seq: c.last_seq,
            }),
            None => {
                let lex = app.lexicon();
                app.0.telemetry.emit(Event::CallStarted {
                    tenant,
                    call_id: &call_id,
                    lexicon: &lex.version,
                });
                let mut session = Session::new(lex, app.0.policy.clone(), &call_id);
                if app.0.auth.enabled() {
                    session.set_tenant(tenant);
                }
                // Feeds that waited for the call get their snapshot now.
                let snap = snapshot_line(&session);
                c.session = Some(session);
                c.fan_out(&snap);
            }
        }
        let hello = Outbound::Session(protocol::Session {
            call_id: call_id.clone(),
            state,
            last_seq: c.last_seq,
        });
        (hello, c.generation)
    };
    let exit = serve_platform(
        &mut socket,
        app,
        &call,
        (tenant, &call_id),
        hello,
        (ack, &mut adapter),
        (&mut out_rx, &replaced),
    )
    .await;
    {
        let mut c = call.lock().expect("call lock");
        if c.generation == generation {
            c.platform = None;
        }
    }
    match exit {
        Exit::Shutdown => {
            // The call's end was queued before the shutdown signal: send it, then close.
            while let Ok(line) = out_rx.try_recv() {
                if !send(&mut socket, &line).await {
                    break;
                }
            }
            close(&mut socket, 1001, "server shutting down").await;
            return;
        }
        Exit::Idle => close(&mut socket, 1001, "idle timeout").await,
        Exit::Gone | Exit::Closed => {}
    }
    // The connection is gone. Unless the call ended, it waits for its platform to come
    // back; after the grace period it ends as dropped and its record is produced.
    let grace = app.0.cfg.grace_period;
    if call.lock().expect("call lock").ended() {
        app.forget(tenant, &call_id, &call);
        return;
    }
    let app = app.clone();
    let tenant = tenant.to_string();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(grace) => {}
            // Shutdown ends every call itself.
            _ = app.0.shutdown.cancelled() => return,
        }
        let mut c = call.lock().expect("call lock");
        if c.generation != generation {
            return;
        }
        app.end_call(&mut c, &tenant, &call_id, EndReason::Dropped);
        c.feeds.clear();
        drop(c);
        app.forget(&tenant, &call_id, &call);
    });
}

#[allow(clippy::too_many_arguments)]
async fn serve_platform(
    socket: &mut WebSocket,
    app: &App,
    call: &Arc<Mutex<Call>>,
    (tenant, call_id): (&str, &str),
    hello: Outbound,
    (ack, adapter): (bool, &mut Adapter),
    (out_rx, replaced): (&mut mpsc::Receiver<Arc<str>>, &CancellationToken),
) -> Exit {
    if !send(socket, &protocol::encode(&hello)).await {
        return Exit::Gone;
    }
    let mut live = Liveness::new(app);
    loop {
        let received = tokio::select! {
            biased;
            _ = app.0.shutdown.cancelled() => return Exit::Shutdown,
            _ = replaced.cancelled() => {
                close(socket, 1008, "replaced by a newer connection for this call").await;
                return Exit::Closed;
            }
            r = socket.recv() => r,
            // Messages queued by keel itself (none in normal running).
            Some(line) = out_rx.recv() => {
                if !send(socket, &line).await {
                    return Exit::Gone;
                }
                continue;
            }
            _ = live.due() => {
                if live.ping(socket).await { continue } else { return Exit::Idle }
            }
        };
        let msg = match received {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                if close_on_error(socket, e).await {
                    app.0.telemetry.emit(Event::Error { code: "too_big" });
                    return Exit::Closed;
                }
                return Exit::Gone;
            }
            None => return Exit::Gone,
        };
        live.heard = Instant::now();
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => return Exit::Gone,
            Message::Binary(_) => {
                let err = protocol::DecodeError::new(
                    "message",
                    "expected a text frame holding JSON (binary frames are not read)",
                );
                if !send(
                    socket,
                    &app.error_line(tenant, call_id, err.to_message(None)),
                )
                .await
                {
                    return Exit::Gone;
                }
                continue;
            }
            _ => continue,
        };
        let mut replies: Vec<String> = Vec::new();
        let mut refuse = false;
        match adapter.decode(&text) {
            Err(e) => replies.push(app.error_line(tenant, call_id, e.to_message(None))),
            Ok(msgs) => {
                for mut msg in msgs {
                    if let Inbound::Start(s) = &mut msg {
                        match admit_start(app, tenant, call_id, s) {
                            Admit::Yes => {}
                            Admit::Ignore(err) => {
                                replies.push(app.error_line(tenant, call_id, err));
                                continue;
                            }
                            Admit::Refuse(err) => {
                                replies.push(app.error_line(tenant, call_id, err));
                                refuse = true;
                                break;
                            }
                        }
                    }
                    let mut c = call.lock().expect("call lock");
                    feed_session(app, &mut c, (tenant, call_id), &msg, ack, &mut replies);
                }
            }
        }
        for r in replies {
            if !send(socket, &r).await {
                return Exit::Gone;
            }
        }
        if refuse {
            close(socket, 1008, "wrong tenant").await;
            return Exit::Closed;
        }
    }
}

/// A session's snapshot as a wire line.
fn snapshot_line(s: &Session) -> Arc<str> {
    protocol::encode(&Outbound::Snapshot(s.snapshot())).into()
}

/// What to do with a platform's `start`.
enum Admit {
    Yes,
    /// It names another call than the URL: answered with this error, then ignored.
    Ignore(Outbound),
    /// It names another tenant than the API key's: answered, and the connection closed.
    Refuse(Outbound),
}

/// Checks a platform's `start` against its connection; fills in the tenant when
/// tenants are configured and the start names none.
fn admit_start(app: &App, tenant: &str, call_id: &str, s: &mut protocol::Start) -> Admit {
    if s.call_id != call_id {
        let err = protocol::DecodeError::new(
            "start.call_id",
            format!(
                "{:?} is not this connection's call ({call_id:?}, from the URL): the start is ignored",
                s.call_id
            ),
        );
        return Admit::Ignore(err.to_message(None));
    }
    if !app.0.auth.enabled() {
        return Admit::Yes;
    }
    match &s.tenant {
        Some(t) if t != tenant => Admit::Refuse(Outbound::Error(protocol::ErrorMsg {
            code: "forbidden".into(),
            message: format!(
                "start.tenant: this connection's API key belongs to tenant {tenant}, not {t}"
            ),
            at_ms: None,
        })),
        Some(_) => Admit::Yes,
        None => {
            s.tenant = Some(tenant.to_string());
            Admit::Yes
        }
    }
}

/// Feeds one message to the call's session: its outputs go to the feeds and into
/// `replies` (then an `ack` when asked for and the message has a `seq`).
fn feed_session(
    app: &App,
    c: &mut Call,
    (tenant, call_id): (&str, &str),
    msg: &Inbound,
    ack: bool,
    replies: &mut Vec<String>,
) {
    let seq = match msg {
        Inbound::Transcript(t) => {
            if t.is_final {
                app.0.telemetry.emit(Event::Segment);
            }
            t.seq
        }
        _ => None,
    };
    let started = Instant::now();
    let outputs = c.session.as_mut().map(|s| s.feed(msg)).unwrap_or_default();
    app.0.telemetry.emit(Event::Processed {
        took: started.elapsed(),
    });
    if let Some(seq) = seq {
        c.last_seq = c.last_seq.max(seq);
    }
    for o in &outputs {
        replies.push(app.publish(c, tenant, call_id, o).to_string());
    }
    if c.ended() {
        // The call is over: its feeds close once they have its record.
        c.feeds.clear();
    }
    if let (true, Some(seq)) = (ack, seq) {
        replies.push(protocol::encode(&Outbound::Ack(protocol::Ack { seq })));
    }
}

/// Threats, boundary warnings due, termination permitted or premature, escalations, and
/// every boundary transition.
fn is_critical(o: &Outbound) -> bool {
    use crate::protocol::{NudgeKind, Priority};
    match o {
        Outbound::Nudge(n) => {
            n.priority == Priority::Critical || n.kind == NudgeKind::EscalateToSupervisor
        }
        Outbound::Boundary(_) => true,
        _ => false,
    }
}

async fn alerts(ws: WebSocketUpgrade, headers: HeaderMap, State(app): State<App>) -> Response {
    let tenant = app
        .0
        .auth
        .origin(&headers)
        .and_then(|()| app.0.auth.supervisor(&headers, auth::now_secs()));
    open_socket(
        ws,
        &headers,
        app,
        Endpoint::Alerts,
        tenant,
        |socket, app, tenant| async move { supervisor(socket, &app, &tenant).await },
    )
}

/// The supervisor feed: the tenant's critical events, each naming its call (`call_id`).
async fn supervisor(mut socket: WebSocket, app: &App, tenant: &str) {
    let mut rx = app.0.alerts.subscribe();
    let mut live = Liveness::new(app);
    loop {
        tokio::select! {
            _ = app.0.shutdown.cancelled() => {
                // Alerts of the calls ended by the shutdown are already queued.
                while let Ok((t, line)) = rx.try_recv() {
                    if &*t == tenant && !send(&mut socket, &line).await {
                        return;
                    }
                }
                close(&mut socket, 1001, "server shutting down").await;
                return;
            }
            alert = rx.recv() => match alert {
                Ok((t, line)) => {
                    if &*t == tenant && !send(&mut socket, &line).await {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    app.0.telemetry.emit(Event::Error { code: "slow_consumer" });
                    close(&mut socket, 1008, "feed too slow: disconnected").await;
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => live.heard = Instant::now(),
            },
            _ = live.due() => if !live.ping(&mut socket).await {
                close(&mut socket, 1001, "idle timeout").await;
                return;
            },
        }
    }
}

/// An oversize message closes the connection with 1009 (returns true); other errors just
/// end it.
async fn close_on_error(socket: &mut WebSocket, e: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
    let inner = e.into_inner();
    let too_big = matches!(
        inner.downcast_ref::<WsError>(),
        Some(WsError::Capacity(CapacityError::MessageTooLong { .. }))
    );
    if too_big {
        close(socket, 1009, "message too big: 64 KiB at most").await;
    }
    too_big
}

async fn nudges(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    Path(call_id): Path<String>,
    State(app): State<App>,
) -> Response {
    let tenant = check_call_id(&call_id)
        .and_then(|()| app.0.auth.origin(&headers))
        .and_then(|()| app.0.auth.feed(&headers, &call_id, auth::now_secs()));
    open_socket(
        ws,
        &headers,
        app,
        Endpoint::Nudges,
        tenant,
        move |socket, app, tenant| async move { feed(socket, &app, &tenant, &call_id).await },
    )
}

async fn feed(socket: WebSocket, app: &App, tenant: &str, call_id: &str) {
    let call = feed_inner(socket, app, tenant, call_id).await;
    if let Some(call) = call {
        // A feed that waited for a call that never came leaves nothing behind.
        call.lock()
            .expect("call lock")
            .feeds
            .retain(|f| !f.tx.is_closed());
        app.forget(tenant, call_id, &call);
    }
}

async fn feed_inner(
    mut socket: WebSocket,
    app: &App,
    tenant: &str,
    call_id: &str,
) -> Option<Arc<Mutex<Call>>> {
    let ended = app
        .0
        .final_snapshots
        .lock()
        .expect("records lock")
        .get(&key(tenant, call_id))
        .cloned();
    if let Some(snap) = ended {
        // The call has ended: its last snapshot, and the feed closes.
        if send(&mut socket, &snap).await {
            close(&mut socket, 1000, "call ended").await;
        }
        return None;
    }
    let (tx, mut rx) = mpsc::channel::<Arc<str>>(FEED_QUEUE);
    let slow = Arc::new(AtomicBool::new(false));
    let call = app.call(&key(tenant, call_id));
    {
        let mut c = call.lock().expect("call lock");
        if let Some(s) = &c.session {
            let snap = snapshot_line(s);
            let _ = tx.try_send(snap);
        }
        // A feed of an ended call gets the snapshot and closes.
        if !c.ended() {
            c.feeds.push(Feed {
                tx,
                slow: Arc::clone(&slow),
            });
        }
    }
    let mut live = Liveness::new(app);
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            line = rx.recv() => match line {
                Some(line) => {
                    if !send(&mut socket, &line).await {
                        return Some(call);
                    }
                }
                None => break,
            },
            // At shutdown the call's end is already queued: send it, then close.
            _ = app.0.shutdown.cancelled() => {
                while let Ok(line) = rx.try_recv() {
                    if !send(&mut socket, &line).await {
                        return Some(call);
                    }
                }
                stopping = true;
                break;
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Some(call),
                Some(Ok(_)) => live.heard = Instant::now(),
            },
            _ = live.due() => if !live.ping(&mut socket).await {
                close(&mut socket, 1001, "idle timeout").await;
                return Some(call);
            },
        }
    }
    if slow.load(Ordering::Relaxed) {
        app.0.telemetry.emit(Event::Error {
            code: "slow_consumer",
        });
        close(&mut socket, 1008, "feed too slow: disconnected").await;
    } else if stopping || app.0.stopping.load(Ordering::SeqCst) {
        close(&mut socket, 1001, "server shutting down").await;
    } else {
        close(&mut socket, 1000, "call ended").await;
    }
    Some(call)
}

#[derive(Deserialize)]
struct TokenQuery {
    ttl: Option<String>,
}

async fn widget_token(
    headers: HeaderMap,
    Path(call_id): Path<String>,
    Query(q): Query<TokenQuery>,
    State(app): State<App>,
) -> Response {
    let tenant = match check_call_id(&call_id).and_then(|()| app.0.auth.platform(&headers)) {
        Ok(t) => t,
        Err(d) => return deny(&app, "widget-token", d),
    };
    let cfg = &app.0.cfg;
    let ttl = match q.ttl.as_deref().map(humantime::parse_duration) {
        None => cfg.token_ttl,
        Some(Ok(d)) if !d.is_zero() && d <= cfg.token_max_ttl => d,
        Some(Ok(_)) => {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    "ttl: more than zero and at most {} (server.token_max_ttl)\n",
                    humantime::format_duration(cfg.token_max_ttl)
                ),
            )
                .into_response()
        }
        Some(Err(e)) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("ttl: {e} (write e.g. 10m, 900s)\n"),
            )
                .into_response()
        }
    };
    let now = auth::now_secs();
    let token = auth::mint(
        app.0.auth.secret(),
        &tenant,
        &Scope::Call(call_id.clone()),
        ttl,
        now,
    );
    let body = serde_json::json!({
        "token": token,
        "protocol": format!("{}{token}", auth::TOKEN_PROTOCOL_PREFIX),
        "tenant": tenant,
        "call_id": call_id,
        "expires_at": now + ttl.as_secs().max(1),
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn record(
    headers: HeaderMap,
    Path(call_id): Path<String>,
    State(app): State<App>,
) -> Response {
    let tenant = match app.0.auth.platform(&headers) {
        Ok(t) => t,
        Err(d) => return deny(&app, "record", d),
    };
    match app.0.records.get(&tenant, &call_id) {
        Err(e) => {
            tracing::error!(event = "record_store_failed", tenant, call_id, error = %e);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the record store failed; try again\n",
            )
                .into_response()
        }
        Ok(Some(r)) => (
            [(header::CONTENT_TYPE, "application/json")],
            protocol::encode(&r),
        )
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no record: the call has not ended\n").into_response(),
    }
}

async fn admin_reload(headers: HeaderMap, State(app): State<App>) -> Response {
    if let Err(d) = app.0.auth.admin(&headers) {
        return deny(&app, "admin", d);
    }
    match app.reload().await {
        Ok(version) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "lexicon_version": version }).to_string(),
        )
            .into_response(),
        Err(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({
                "error": "lexicon set refused; the running set is kept",
                "details": errors,
                "lexicon_version": app.lexicon().version,
            })
            .to_string(),
        )
            .into_response(),
    }
}

async fn ready(State(app): State<App>) -> Response {
    if app.0.stopping.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    format!("ready: lexicon {}\n", app.lexicon().version).into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    let calls: Vec<Arc<Mutex<Call>>> = app
        .0
        .calls
        .lock()
        .expect("calls lock")
        .values()
        .cloned()
        .collect();
    let active = calls
        .iter()
        .filter(|c| {
            let c = c.lock().expect("call lock");
            c.session.is_some() && !c.ended()
        })
        .count();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.0.telemetry.render(active),
    )
        .into_response()
}

async fn widget() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../../widget/index.html"),
    )
        .into_response()
}
