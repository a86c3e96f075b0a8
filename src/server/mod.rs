//! `keel serve`: the engine on the network, as `protocol.md` describes it. Plumbing only:
//! routing, the per-call hub, fan-out to feeds, limits; every coaching decision is the
//! engine's ([`crate::coach::Session`]).
//!
//! - `GET /v1/calls/{call_id}/stream`: the platform's websocket. keel answers `session`
//!   first, then every coaching message its transcript messages cause (`?ack=true` adds
//!   an `ack` after each processed transcript that carries `seq`).
//! - `GET /v1/calls/{call_id}/nudges`: a widget's feed: `snapshot`, then the live
//!   messages. A feed opened before its call starts waits for the call.
//! - `GET /v1/calls/{call_id}/record`: the call record (404 until the call has ended).
//! - `GET /v1/supervisor/alerts`: every critical event (boundary transitions, critical
//!   nudges, escalations), each with the `call_id` it belongs to.
//! - `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /widget/`.
//!
//! A platform connection that drops leaves its call open for a grace period (default
//! 120 s): reconnecting to the same URL resumes it (`session` says `resumed` and
//! `last_seq`); after the grace period the call ends as `dropped` and its record is
//! produced.
//!
//! Not yet here (the server issue's remaining work): authentication and tenants (every
//! call is the `default` tenant's), widget tokens, ping/pong idle timeouts, connection caps, lexicon
//! reload, a TOML server section, JSON logs.

pub mod client;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::coach::{Policy, Session};
use crate::lexicon::Lexicon;
use crate::protocol::{self, CallRecord, EndReason, Inbound, Outbound, SessionState};

/// Largest websocket message and frame keel accepts (bytes).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Messages a feed may fall behind before it is disconnected.
pub const FEED_QUEUE: usize = 256;
/// Alerts a supervisor feed may fall behind before it is disconnected.
pub const ALERT_QUEUE: usize = 1024;
/// How long a call whose platform connection dropped waits for it to reconnect.
pub const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(120);
/// The tenant of every call while authentication is not configured.
pub const DEFAULT_TENANT: &str = "default";

/// A widget feed: a bounded queue; a reader too slow to keep up is cut off.
struct Feed {
    tx: mpsc::Sender<Arc<str>>,
    slow: Arc<AtomicBool>,
}

/// One call: its session (once the platform has connected), its feeds.
#[derive(Default)]
struct Call {
    session: Option<Session>,
    feeds: Vec<Feed>,
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
}

#[derive(Default)]
struct Metrics {
    connections: AtomicU64,
    segments: AtomicU64,
    errors: AtomicU64,
    nudges: Mutex<BTreeMap<&'static str, u64>>,
    boundary: AtomicU64,
    /// Per-message processing latency: counts per bucket (`LATENCY_BUCKETS`, then +Inf)
    /// and the sum in microseconds.
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
}

/// Upper bounds (seconds) of the processing-latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 8] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01];

impl Metrics {
    fn latency(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

struct Inner {
    lexicon: Arc<Lexicon>,
    policy: Policy,
    grace: std::time::Duration,
    calls: Mutex<HashMap<String, Arc<Mutex<Call>>>>,
    /// Critical events of every call, for the supervisor feed.
    alerts: tokio::sync::broadcast::Sender<Arc<str>>,
    records: Mutex<HashMap<String, CallRecord>>,
    metrics: Metrics,
}

/// The server's shared state.
#[derive(Clone)]
pub struct App(Arc<Inner>);

impl App {
    pub fn new(lexicon: Arc<Lexicon>, policy: Policy) -> App {
        App::with_grace(lexicon, policy, DEFAULT_GRACE)
    }

    /// A server whose dropped calls wait `grace` for their platform to reconnect.
    pub fn with_grace(lexicon: Arc<Lexicon>, policy: Policy, grace: std::time::Duration) -> App {
        App(Arc::new(Inner {
            lexicon,
            policy,
            grace,
            calls: Mutex::new(HashMap::new()),
            alerts: tokio::sync::broadcast::channel(ALERT_QUEUE).0,
            records: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
        }))
    }

    /// The record of an ended call.
    pub fn record(&self, call_id: &str) -> Option<CallRecord> {
        self.0
            .records
            .lock()
            .expect("records lock")
            .get(&format!("{DEFAULT_TENANT}/{call_id}"))
            .cloned()
    }

    fn call(&self, key: &str) -> Arc<Mutex<Call>> {
        let mut calls = self.0.calls.lock().expect("calls lock");
        Arc::clone(calls.entry(key.to_string()).or_default())
    }

    /// Ends every open call (server shutdown): their records are produced and stored.
    pub fn end_all(&self, reason: EndReason) {
        let calls: Vec<Arc<Mutex<Call>>> = self
            .0
            .calls
            .lock()
            .expect("calls lock")
            .values()
            .cloned()
            .collect();
        for call in calls {
            let mut c = call.lock().expect("call lock");
            let Some(session) = c.session.as_mut() else {
                continue;
            };
            let session_id = &session.call_id().to_string();
            if session.is_ended() {
                continue;
            }
            let outputs = session.feed(&Inbound::End(protocol::End { reason }));
            for o in &outputs {
                self.observe(session_id, o);
                let line: Arc<str> = protocol::encode(o).into();
                c.fan_out(&line);
            }
        }
    }

    /// Counts an output, keeps records, and passes critical events to supervisors.
    fn observe(&self, call_id: &str, o: &Outbound) {
        if is_critical(o) {
            let mut v = serde_json::to_value(o).expect("wire types serialise");
            v["call_id"] = serde_json::Value::String(call_id.to_string());
            let _ = self.0.alerts.send(v.to_string().into());
        }
        let m = &self.0.metrics;
        match o {
            Outbound::Nudge(n) => {
                *m.nudges
                    .lock()
                    .expect("metrics lock")
                    .entry(n.kind.as_str())
                    .or_default() += 1;
            }
            Outbound::Boundary(_) => {
                m.boundary.fetch_add(1, Ordering::Relaxed);
            }
            Outbound::Error(_) => {
                m.errors.fetch_add(1, Ordering::Relaxed);
            }
            Outbound::Record(r) => {
                // Records are kept under the call id of the URL, which names the call.
                let key = format!("{DEFAULT_TENANT}/{call_id}");
                self.0
                    .records
                    .lock()
                    .expect("records lock")
                    .insert(key, r.record.clone());
            }
            _ => {}
        }
    }
}

/// The router of every endpoint.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/v1/calls/{call_id}/stream", get(stream))
        .route("/v1/calls/{call_id}/nudges", get(nudges))
        .route("/v1/calls/{call_id}/record", get(record))
        .route("/v1/supervisor/alerts", get(alerts))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/widget/", get(widget))
        .with_state(app)
}

/// Serves on an already-bound listener until `shutdown` completes; then ends the open
/// calls (their records are produced).
pub async fn run(
    listener: TcpListener,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await;
    app.end_all(EndReason::Dropped);
    result
}

#[derive(Deserialize)]
struct StreamQuery {
    #[serde(default)]
    ack: bool,
}

async fn stream(
    ws: WebSocketUpgrade,
    Path(call_id): Path<String>,
    Query(q): Query<StreamQuery>,
    State(app): State<App>,
) -> Response {
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| platform(socket, app, call_id, q.ack))
}

async fn send(socket: &mut WebSocket, line: &str) -> bool {
    socket
        .send(Message::Text(line.to_string().into()))
        .await
        .is_ok()
}

async fn platform(mut socket: WebSocket, app: App, call_id: String, ack: bool) {
    app.0.metrics.connections.fetch_add(1, Ordering::Relaxed);
    let key = format!("{DEFAULT_TENANT}/{call_id}");
    let call = app.call(&key);
    let (hello, generation) = {
        let mut c = call.lock().expect("call lock");
        c.generation += 1;
        let state = if c.session.is_some() {
            SessionState::Resumed
        } else {
            SessionState::New
        };
        if c.session.is_none() {
            let session = Session::new(Arc::clone(&app.0.lexicon), app.0.policy.clone(), &call_id);
            // Feeds that waited for the call get their snapshot now.
            let snap: Arc<str> = protocol::encode(&Outbound::Snapshot(session.snapshot())).into();
            c.session = Some(session);
            c.fan_out(&snap);
        }
        let hello = Outbound::Session(protocol::Session {
            call_id: call_id.clone(),
            state,
            last_seq: c.last_seq,
        });
        (hello, c.generation)
    };
    serve_platform(&mut socket, &app, &call, &call_id, hello, ack).await;
    // The connection is gone. Unless the call ended, it waits for its platform to come
    // back; after the grace period it ends as dropped and its record is produced.
    let grace = app.0.grace;
    let ended = call
        .lock()
        .expect("call lock")
        .session
        .as_ref()
        .is_none_or(|s| s.is_ended());
    if !ended {
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let mut c = call.lock().expect("call lock");
            if c.generation != generation {
                return;
            }
            let outputs = match c.session.as_mut() {
                Some(s) if !s.is_ended() => s.feed(&Inbound::End(protocol::End {
                    reason: EndReason::Dropped,
                })),
                _ => return,
            };
            for o in &outputs {
                app.observe(&call_id, o);
                let line: Arc<str> = protocol::encode(o).into();
                c.fan_out(&line);
            }
        });
    }
}

async fn serve_platform(
    socket: &mut WebSocket,
    app: &App,
    call: &Arc<Mutex<Call>>,
    call_id: &str,
    hello: Outbound,
    ack: bool,
) {
    if !send(socket, &protocol::encode(&hello)).await {
        return;
    }
    while let Some(received) = socket.recv().await {
        let msg = match received {
            Ok(m) => m,
            Err(e) => {
                close_on_error(socket, e).await;
                return;
            }
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        let mut replies: Vec<String> = Vec::new();
        match protocol::decode_inbound(&text) {
            Err(e) => {
                let err = e.to_message(None);
                app.observe(call_id, &err);
                replies.push(protocol::encode(&err));
            }
            Ok(msg) => {
                let seq = match &msg {
                    Inbound::Transcript(t) => {
                        app.0
                            .metrics
                            .segments
                            .fetch_add(t.is_final as u64, Ordering::Relaxed);
                        t.seq
                    }
                    _ => None,
                };
                let mut c = call.lock().expect("call lock");
                let Call { session, .. } = &mut *c;
                let started = std::time::Instant::now();
                let outputs = session.as_mut().map(|s| s.feed(&msg)).unwrap_or_default();
                app.0.metrics.latency(started.elapsed());
                if let Some(seq) = seq {
                    c.last_seq = c.last_seq.max(seq);
                }
                for o in &outputs {
                    app.observe(call_id, o);
                    let line: Arc<str> = protocol::encode(o).into();
                    c.fan_out(&line);
                    replies.push(line.to_string());
                }
                if let (true, Some(seq)) = (ack, seq) {
                    replies.push(protocol::encode(&Outbound::Ack(protocol::Ack { seq })));
                }
            }
        }
        for r in replies {
            if !send(socket, &r).await {
                return;
            }
        }
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

async fn alerts(ws: WebSocketUpgrade, State(app): State<App>) -> Response {
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| supervisor(socket, app))
}

/// The supervisor feed: every critical event, each naming its call (`call_id`).
async fn supervisor(mut socket: WebSocket, app: App) {
    app.0.metrics.connections.fetch_add(1, Ordering::Relaxed);
    let mut rx = app.0.alerts.subscribe();
    loop {
        tokio::select! {
            alert = rx.recv() => match alert {
                Ok(line) => {
                    if socket.send(Message::Text(line.to_string().into())).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let frame = CloseFrame { code: 1008, reason: "feed too slow: disconnected".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
        }
    }
}

/// An oversize message closes the connection with 1009; other errors just end it.
async fn close_on_error(socket: &mut WebSocket, e: axum::Error) {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
    let inner = e.into_inner();
    let too_big = matches!(
        inner.downcast_ref::<WsError>(),
        Some(WsError::Capacity(CapacityError::MessageTooLong { .. }))
    );
    if too_big {
        let frame = CloseFrame {
            code: 1009,
            reason: "message too big: 64 KiB at most".into(),
        };
        let _ = socket.send(Message::Close(Some(frame))).await;
    }
}

async fn nudges(
    ws: WebSocketUpgrade,
    Path(call_id): Path<String>,
    State(app): State<App>,
) -> Response {
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| feed(socket, app, call_id))
}

async fn feed(mut socket: WebSocket, app: App, call_id: String) {
    app.0.metrics.connections.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Arc<str>>(FEED_QUEUE);
    let slow = Arc::new(AtomicBool::new(false));
    let call = app.call(&format!("{DEFAULT_TENANT}/{call_id}"));
    {
        let mut c = call.lock().expect("call lock");
        if let Some(s) = &c.session {
            let snap: Arc<str> = protocol::encode(&Outbound::Snapshot(s.snapshot())).into();
            let _ = tx.try_send(snap);
        }
        c.feeds.push(Feed {
            tx,
            slow: Arc::clone(&slow),
        });
    }
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(line) => {
                    if socket.send(Message::Text(line.to_string().into())).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
        }
    }
    if slow.load(Ordering::Relaxed) {
        let frame = CloseFrame {
            code: 1008,
            reason: "feed too slow: disconnected".into(),
        };
        let _ = socket.send(Message::Close(Some(frame))).await;
    }
}

async fn record(Path(call_id): Path<String>, State(app): State<App>) -> Response {
    let key = format!("{DEFAULT_TENANT}/{call_id}");
    match app.0.records.lock().expect("records lock").get(&key) {
        Some(r) => (
            [(header::CONTENT_TYPE, "application/json")],
            protocol::encode(r),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no record: the call has not ended\n").into_response(),
    }
}

async fn ready(State(app): State<App>) -> Response {
    format!("ready: lexicon {}\n", app.0.lexicon.version).into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    let m = &app.0.metrics;
    let active = app
        .0
        .calls
        .lock()
        .expect("calls lock")
        .values()
        .filter(|c| {
            c.lock()
                .expect("call lock")
                .session
                .as_ref()
                .is_some_and(|s| !s.is_ended())
        })
        .count();
    let mut s = String::new();
    s.push_str("# TYPE keel_connections_total counter\n");
    s.push_str(&format!(
        "keel_connections_total {}\n",
        m.connections.load(Ordering::Relaxed)
    ));
    s.push_str("# TYPE keel_active_calls gauge\n");
    s.push_str(&format!("keel_active_calls {active}\n"));
    s.push_str("# TYPE keel_segments_total counter\n");
    s.push_str(&format!(
        "keel_segments_total {}\n",
        m.segments.load(Ordering::Relaxed)
    ));
    s.push_str("# TYPE keel_boundary_transitions_total counter\n");
    s.push_str(&format!(
        "keel_boundary_transitions_total {}\n",
        m.boundary.load(Ordering::Relaxed)
    ));
    s.push_str("# TYPE keel_errors_total counter\n");
    s.push_str(&format!(
        "keel_errors_total{{code=\"bad_message\"}} {}\n",
        m.errors.load(Ordering::Relaxed)
    ));
    s.push_str("# TYPE keel_processing_seconds histogram\n");
    let mut cumulative = 0;
    for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
        cumulative += m.latency[i].load(Ordering::Relaxed);
        s.push_str(&format!(
            "keel_processing_seconds_bucket{{le=\"{bound}\"}} {cumulative}\n"
        ));
    }
    cumulative += m.latency[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
    s.push_str(&format!(
        "keel_processing_seconds_bucket{{le=\"+Inf\"}} {cumulative}\n"
    ));
    s.push_str(&format!(
        "keel_processing_seconds_sum {}\n",
        m.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
    ));
    s.push_str(&format!("keel_processing_seconds_count {cumulative}\n"));
    s.push_str("# TYPE keel_nudges_total counter\n");
    for (kind, n) in m.nudges.lock().expect("metrics lock").iter() {
        s.push_str(&format!("keel_nudges_total{{kind=\"{kind}\"}} {n}\n"));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s).into_response()
}

async fn widget() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../../widget/index.html"),
    )
        .into_response()
}
