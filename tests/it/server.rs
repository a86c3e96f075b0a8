//! The server over real sockets on 127.0.0.1:0: live output equals the offline replay,
//! the widget feed gets the same messages, errors keep the connection, limits hold.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use keel::coach::Policy;
use keel::protocol::{self, Inbound, Outbound};
use keel::replay;
use keel::server::App;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

use super::support::{fixture, fixtures, product_lexicon};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn start() -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    start_app(App::new(product_lexicon(), Policy::default())).await
}

/// Serves `app` on 127.0.0.1:0 until the sender fires.
pub async fn start_app(
    app: App,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        keel::server::run(listener, app, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (addr, tx, handle)
}

/// Reads until the connection closes; the close frame's code, if it had one.
pub async fn close_code(ws: &mut Ws) -> Option<u16> {
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(f)) => return f.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the connection closes in time")
}

pub async fn next_text(ws: &mut Ws) -> String {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("ok");
        if let Message::Text(t) = m {
            return t.to_string();
        }
    }
}

/// Streams a fixture as a platform would; returns what came back (session first).
async fn stream_fixture(addr: SocketAddr, call_id: &str, lines: &[replay::Line]) -> Vec<String> {
    let (mut ws, _) = connect_async(format!("ws://{addr}/v1/calls/{call_id}/stream"))
        .await
        .unwrap();
    let mut got = vec![next_text(&mut ws).await];
    for l in lines {
        ws.send(Message::Text(protocol::encode(&l.msg).into()))
            .await
            .unwrap();
    }
    loop {
        let t = next_text(&mut ws).await;
        let done = t.starts_with("{\"type\":\"record\"");
        got.push(t);
        if done {
            break;
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_output_equals_the_offline_replay_for_every_fixture() {
    let (addr, stop, handle) = start().await;
    let lex = product_lexicon();
    for f in fixtures() {
        let lines = replay::read_fixture(&f).unwrap();
        let call_id = match &lines[0].msg {
            Inbound::Start(s) => s.call_id.clone(),
            _ => panic!("fixtures start with start"),
        };
        // A widget feed opened before the call starts waits for it.
        let (mut feed, _) = connect_async(format!("ws://{addr}/v1/calls/{call_id}/nudges"))
            .await
            .unwrap();
        let live = stream_fixture(addr, &call_id, &lines).await;
        assert!(
            live[0].contains("\"type\":\"session\"") && live[0].contains("\"state\":\"new\""),
            "{}",
            live[0]
        );
        let offline = replay::format_json(&replay::coach(&lex, &Policy::default(), &lines));
        let live_json: String = live[1..].iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(live_json, offline, "{}", f.display());

        let first = next_text(&mut feed).await;
        assert!(first.starts_with("{\"type\":\"snapshot\""), "{first}");
        let mut fed = Vec::new();
        while fed.len() < live.len() - 1 {
            fed.push(next_text(&mut feed).await);
        }
        assert_eq!(
            fed,
            live[1..].to_vec(),
            "{}: the feed carries the same messages",
            f.display()
        );

        let record = reqwest_get(addr, &format!("/v1/calls/{call_id}/record")).await;
        assert!(
            record.0 == 200 && record.1.contains(&format!("\"call_id\":\"{call_id}\"")),
            "{record:?}"
        );
    }
    let metrics = reqwest_get(addr, "/metrics").await.1;
    assert!(
        metrics.contains("keel_nudges_total{kind=\"validate_feelings\"}"),
        "{metrics}"
    );
    let count: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("keel_processing_seconds_count "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(count > 1000, "every processed message is timed: {metrics}");
    stop.send(()).unwrap();
    handle.await.unwrap();
}

/// A GET over a raw socket.
pub async fn reqwest_get(addr: SocketAddr, path: &str) -> (u16, String) {
    super::support::http(addr, "GET", path, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_an_error_and_the_connection_stays() {
    let (addr, stop, handle) = start().await;
    let (mut ws, _) = connect_async(format!("ws://{addr}/v1/calls/c-bad/stream?ack=true"))
        .await
        .unwrap();
    next_text(&mut ws).await;
    ws.send(Message::Text("{not json".into())).await.unwrap();
    let e = next_text(&mut ws).await;
    assert!(
        e.contains("\"type\":\"error\"") && e.contains("message: not valid JSON"),
        "{e}"
    );
    ws.send(Message::Text(
        r#"{"type":"transcript","segment_id":"s-1","speaker":"robot","text":"x","is_final":true}"#
            .into(),
    ))
    .await
    .unwrap();
    let e = next_text(&mut ws).await;
    assert!(e.contains("transcript.speaker"), "{e}");
    ws.send(Message::Binary(vec![0x7b, 0x7d].into()))
        .await
        .unwrap();
    let e = next_text(&mut ws).await;
    assert!(e.contains("message: expected a text frame"), "{e}");
    ws.send(Message::Text(
        r#"{"type":"start","call_id":"c-someone-else"}"#.into(),
    ))
    .await
    .unwrap();
    let e = next_text(&mut ws).await;
    assert!(e.contains("start.call_id") && e.contains("c-bad"), "{e}");
    ws.send(Message::Text(
        r#"{"type":"transcript","segment_id":"s-2","speaker":"customer","text":"hello there","is_final":true,"seq":7}"#.into(),
    ))
    .await
    .unwrap();
    let a = next_text(&mut ws).await;
    assert_eq!(
        a, r#"{"type":"ack","seq":7}"#,
        "the connection is still served"
    );
    // An oversize message closes the connection with 1009.
    let big = "x".repeat(keel::server::MAX_MESSAGE + 10);
    let _ = ws.send(Message::Text(big.into())).await;
    let closed = close_code(&mut ws).await;
    assert_eq!(closed, Some(1009));
    let (code, _) = reqwest_get(addr, "/v1/calls/c-bad/record").await;
    assert_eq!(code, 404, "no record before the call ends");
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_calls_and_keeps_their_records() {
    let app = App::new(Arc::clone(&product_lexicon()), Policy::default());
    let (addr, tx, handle) = start_app(app.clone()).await;
    let (mut ws, _) = connect_async(format!("ws://{addr}/v1/calls/c-open/stream"))
        .await
        .unwrap();
    next_text(&mut ws).await;
    ws.send(Message::Text(
        r#"{"type":"transcript","segment_id":"s-1","speaker":"customer","text":"this is ridiculous","is_final":true,"end_ms":1000}"#.into(),
    ))
    .await
    .unwrap();
    let n = next_text(&mut ws).await;
    assert!(n.contains("validate_feelings"), "{n}");
    drop(ws);
    tx.send(()).unwrap();
    handle.await.unwrap();
    let record = app
        .record("c-open")
        .expect("a record for the call open at shutdown");
    assert_eq!(record.end_reason, protocol::EndReason::Dropped);
    let _ = Outbound::Record;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_platform_connection_resumes_without_double_counting() {
    let (addr, stop, handle) = start().await;
    let url = format!("ws://{addr}/v1/calls/c-resume/stream");
    let abuse = r#"{"type":"transcript","segment_id":"s-1","speaker":"customer","text":"you useless idiot","is_final":true,"start_ms":0,"end_ms":1500,"seq":1}"#;
    let (mut ws, _) = connect_async(&url).await.unwrap();
    assert!(next_text(&mut ws).await.contains("\"state\":\"new\""));
    ws.send(Message::Text(abuse.into())).await.unwrap();
    let mut saw_boundary = false;
    while !saw_boundary {
        saw_boundary = next_text(&mut ws).await.contains("\"type\":\"boundary\"");
    }
    drop(ws);

    let (mut ws, _) = connect_async(&url).await.unwrap();
    let hello = next_text(&mut ws).await;
    assert!(
        hello.contains("\"state\":\"resumed\"") && hello.contains("\"last_seq\":1"),
        "{hello}"
    );
    // A newer connection for the same call takes over from an older one (which may be
    // half-open): the older is closed with 1008 and the call goes on.
    let (mut newer, _) = connect_async(&url).await.unwrap();
    assert!(next_text(&mut newer)
        .await
        .contains("\"state\":\"resumed\""));
    let code = close_code(&mut ws).await;
    assert_eq!(code, Some(1008));
    let mut ws = newer;
    // The platform re-sends from its last unacknowledged message: the final is idempotent.
    ws.send(Message::Text(abuse.into())).await.unwrap();
    ws.send(Message::Text(
        r#"{"type":"end","reason":"customer_hangup"}"#.into(),
    ))
    .await
    .unwrap();
    let mut record = String::new();
    while !record.starts_with("{\"type\":\"record\"") {
        record = next_text(&mut ws).await;
    }
    assert!(record.contains("\"abuse_incidents\":1"), "{record}");
    drop(ws);

    // The call has ended: a reconnect does not start it over...
    let (mut again, _) = connect_async(&url).await.unwrap();
    let refused = next_text(&mut again).await;
    assert!(
        refused.contains("\"code\":\"call_ended\"") && refused.contains("/record"),
        "{refused}"
    );
    // ...and a widget that opens the feed late gets the call's last snapshot.
    let (mut late, _) = connect_async(format!("ws://{addr}/v1/calls/c-resume/nudges"))
        .await
        .unwrap();
    let snap = next_text(&mut late).await;
    assert!(snap.starts_with("{\"type\":\"snapshot\""), "{snap}");
    assert!(snap.contains("\"abuse_incidents\":1"), "{snap}");
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_platform_never_returns_ends_as_dropped() {
    let cfg = keel::server::ServerConfig {
        grace_period: Duration::from_millis(300),
        ..Default::default()
    };
    let app = App::with_config(product_lexicon(), None, Policy::default(), cfg, vec![7; 32]);
    let (addr, tx, handle) = start_app(app.clone()).await;
    let (mut feed, _) = connect_async(format!("ws://{addr}/v1/calls/c-gone/nudges"))
        .await
        .unwrap();
    let (mut ws, _) = connect_async(format!("ws://{addr}/v1/calls/c-gone/stream"))
        .await
        .unwrap();
    next_text(&mut ws).await;
    ws.send(Message::Text(
        r#"{"type":"transcript","segment_id":"s-1","speaker":"customer","text":"hello","is_final":true,"end_ms":900}"#.into(),
    ))
    .await
    .unwrap();
    drop(ws);
    assert!(
        app.record("c-gone").is_none(),
        "still within the grace period"
    );
    // The feed sees the record of the dropped call.
    let mut last = String::new();
    while !last.starts_with("{\"type\":\"record\"") {
        last = next_text(&mut feed).await;
    }
    assert!(last.contains("\"end_reason\":\"dropped\""), "{last}");
    assert_eq!(
        app.record("c-gone").unwrap().end_reason,
        protocol::EndReason::Dropped
    );
    tx.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_see_the_critical_events_of_every_call() {
    let (addr, stop, handle) = start().await;
    let (mut alerts, _) = connect_async(format!("ws://{addr}/v1/supervisor/alerts"))
        .await
        .unwrap();
    let abusive = &fixture("06");
    let lines = replay::read_fixture(abusive).unwrap();
    let live = stream_fixture(addr, "c-alerts", &lines[1..]).await;
    let critical: Vec<&String> = live
        .iter()
        .filter(|l| {
            l.contains("\"priority\":\"critical\"") || l.starts_with("{\"type\":\"boundary\"")
        })
        .collect();
    assert!(
        critical.len() >= 4,
        "the abusive call has critical events: {live:?}"
    );
    for want in critical {
        let got = next_text(&mut alerts).await;
        let mut v: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v["call_id"], "c-alerts", "{got}");
        v.as_object_mut().unwrap().remove("call_id");
        assert_eq!(v, serde_json::from_str::<serde_json::Value>(want).unwrap());
    }
    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_feed_is_cut_off_while_the_call_goes_on() {
    let (addr, stop, handle) = start().await;
    // A widget feed that never reads.
    let (mut slow, _) = connect_async(format!("ws://{addr}/v1/calls/c-slow/nudges"))
        .await
        .unwrap();
    let (mut ws, _) = connect_async(format!("ws://{addr}/v1/calls/c-slow/stream?ack=true"))
        .await
        .unwrap();
    next_text(&mut ws).await;
    // Each round: a partial that raises a boundary nudge quoting ~50 KB, then a final
    // that retracts it — two messages for the feed, one of them large.
    let filler = "and then I waited on the line for another hour ".repeat(1000);
    let rounds = 400u64;
    for i in 0..rounds {
        let partial = format!(
            r#"{{"type":"transcript","segment_id":"s-{i}","speaker":"customer","text":"you idiot {filler}","is_final":false,"start_ms":{},"end_ms":{}}}"#,
            i * 1000,
            i * 1000 + 500
        );
        let fin = format!(
            r#"{{"type":"transcript","segment_id":"s-{i}","speaker":"customer","text":"you did it, thanks","is_final":true,"start_ms":{},"end_ms":{},"seq":{}}}"#,
            i * 1000,
            i * 1000 + 900,
            i + 1
        );
        ws.send(Message::Text(partial.into())).await.unwrap();
        ws.send(Message::Text(fin.into())).await.unwrap();
        // The platform keeps being served: its ack comes after each final.
        loop {
            if next_text(&mut ws).await.starts_with("{\"type\":\"ack\"") {
                break;
            }
        }
    }
    // The slow feed was disconnected with 1008 once its queue overflowed.
    let code = close_code(&mut slow).await;
    assert_eq!(code, Some(1008));
    stop.send(()).unwrap();
    handle.await.unwrap();
}
