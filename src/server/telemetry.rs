//! Telemetry as named events: [`Telemetry::emit`] is the one place that logs an event
//! and counts it. Events carry tenants, call ids, kinds and codes — never transcript
//! text, tokens, keys or card data.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Which websocket endpoint a connection is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    Stream,
    Nudges,
    Alerts,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Stream => "stream",
            Endpoint::Nudges => "nudges",
            Endpoint::Alerts => "alerts",
        }
    }
}

/// Everything the server reports.
pub enum Event<'a> {
    ConnectionOpened {
        endpoint: Endpoint,
        tenant: &'a str,
    },
    ConnectionClosed {
        endpoint: Endpoint,
        tenant: &'a str,
        why: &'static str,
    },
    /// A request refused before its websocket opened.
    Rejected {
        endpoint: &'static str,
        code: &'static str,
        status: u16,
    },
    CallStarted {
        tenant: &'a str,
        call_id: &'a str,
        lexicon: &'a str,
    },
    CallResumed {
        tenant: &'a str,
        call_id: &'a str,
        last_seq: u64,
    },
    CallEnded {
        tenant: &'a str,
        call_id: &'a str,
        reason: &'a str,
    },
    /// A final segment processed (partials are not counted).
    Segment,
    Nudge {
        kind: &'static str,
    },
    Boundary {
        state: &'static str,
    },
    /// An `error` message sent, or a connection closed for a fault.
    Error {
        code: &'static str,
    },
    Processed {
        took: Duration,
    },
    LexiconReloaded {
        version: &'a str,
    },
    LexiconRefused {
        errors: &'a str,
    },
}

/// Upper bounds (seconds) of the processing-latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 8] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01];

#[derive(Default)]
pub struct Telemetry {
    connections: Mutex<BTreeMap<Endpoint, (u64, i64)>>,
    segments: AtomicU64,
    counters: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
}

impl Telemetry {
    fn count(&self, family: &'static str, label: &'static str) {
        *self
            .counters
            .lock()
            .expect("metrics lock")
            .entry((family, label))
            .or_default() += 1;
    }

    /// Logs and counts one event.
    pub fn emit(&self, e: Event<'_>) {
        match e {
            Event::ConnectionOpened { endpoint, tenant } => {
                let mut c = self.connections.lock().expect("metrics lock");
                let e = c.entry(endpoint).or_default();
                e.0 += 1;
                e.1 += 1;
                tracing::debug!(
                    event = "connection_opened",
                    endpoint = endpoint.as_str(),
                    tenant
                );
            }
            Event::ConnectionClosed {
                endpoint,
                tenant,
                why,
            } => {
                self.connections
                    .lock()
                    .expect("metrics lock")
                    .entry(endpoint)
                    .or_default()
                    .1 -= 1;
                tracing::debug!(
                    event = "connection_closed",
                    endpoint = endpoint.as_str(),
                    tenant,
                    why
                );
            }
            Event::Rejected {
                endpoint,
                code,
                status,
            } => {
                self.count("error", code);
                tracing::info!(event = "request_rejected", endpoint, code, status);
            }
            Event::CallStarted {
                tenant,
                call_id,
                lexicon,
            } => tracing::info!(event = "call_started", tenant, call_id, lexicon),
            Event::CallResumed {
                tenant,
                call_id,
                last_seq,
            } => tracing::info!(event = "call_resumed", tenant, call_id, last_seq),
            Event::CallEnded {
                tenant,
                call_id,
                reason,
            } => tracing::info!(event = "call_ended", tenant, call_id, reason),
            Event::Segment => {
                self.segments.fetch_add(1, Ordering::Relaxed);
            }
            Event::Nudge { kind } => self.count("nudge", kind),
            Event::Boundary { state } => self.count("boundary", state),
            Event::Error { code } => {
                self.count("error", code);
                tracing::debug!(event = "error", code);
            }
            Event::Processed { took } => {
                let secs = took.as_secs_f64();
                let i = LATENCY_BUCKETS
                    .iter()
                    .position(|&b| secs <= b)
                    .unwrap_or(LATENCY_BUCKETS.len());
                self.latency[i].fetch_add(1, Ordering::Relaxed);
                self.latency_sum_us
                    .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
            }
            Event::LexiconReloaded { version } => {
                self.count("reload", "ok");
                tracing::info!(event = "lexicon_reloaded", version);
            }
            Event::LexiconRefused { errors } => {
                self.count("reload", "refused");
                tracing::error!(event = "lexicon_refused", errors);
            }
        }
    }

    /// The Prometheus text exposition of every metric; `active_calls` is read by the
    /// caller.
    pub fn render(&self, active_calls: usize) -> String {
        let mut s = String::new();
        let conns = self.connections.lock().expect("metrics lock").clone();
        let _ = writeln!(s, "# TYPE keel_connections_total counter");
        let total: u64 = conns.values().map(|c| c.0).sum();
        let _ = writeln!(s, "keel_connections_total {total}");
        let _ = writeln!(s, "# TYPE keel_open_connections gauge");
        for (e, (_, open)) in &conns {
            let _ = writeln!(
                s,
                "keel_open_connections{{endpoint=\"{}\"}} {open}",
                e.as_str()
            );
        }
        let _ = writeln!(s, "# TYPE keel_active_calls gauge");
        let _ = writeln!(s, "keel_active_calls {active_calls}");
        let _ = writeln!(s, "# TYPE keel_segments_total counter");
        let _ = writeln!(
            s,
            "keel_segments_total {}",
            self.segments.load(Ordering::Relaxed)
        );
        let counters = self.counters.lock().expect("metrics lock").clone();
        let families = [
            ("nudge", "keel_nudges_total", "kind"),
            ("boundary", "keel_boundary_transitions_total", "state"),
            ("error", "keel_errors_total", "code"),
            ("reload", "keel_lexicon_reloads_total", "result"),
        ];
        for (family, name, label) in families {
            let _ = writeln!(s, "# TYPE {name} counter");
            for ((f, l), n) in &counters {
                if *f == family {
                    let _ = writeln!(s, "{name}{{{label}=\"{l}\"}} {n}");
                }
            }
        }
        let _ = writeln!(s, "# TYPE keel_processing_seconds histogram");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.latency[i].load(Ordering::Relaxed);
            let _ = writeln!(
                s,
                "keel_processing_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.latency[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            s,
            "keel_processing_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            s,
            "keel_processing_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "keel_processing_seconds_count {cumulative}");
        s
    }
}
