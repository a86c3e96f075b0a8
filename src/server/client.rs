//! A platform simulator: `keel replay --to ws://HOST:PORT FILE...` streams recorded calls
//! into a running server as a platform would, at N times real time or as fast as
//! possible, and hands back what the server sends.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::protocol::{self, Inbound};
use crate::replay::Line;

/// How fast to stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// Call time divided by this factor (1.0 = real time).
    Times(f64),
    /// No waiting.
    Max,
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Speed, String> {
        if s == "max" {
            return Ok(Speed::Max);
        }
        match s.parse::<f64>() {
            Ok(n) if n > 0.0 && n.is_finite() => Ok(Speed::Times(n)),
            _ => Err(format!("speed {s:?}: expected a positive number or max")),
        }
    }
}

fn at_ms(m: &Inbound) -> Option<u64> {
    match m {
        Inbound::Transcript(t) => t.start_ms.or(t.end_ms),
        _ => None,
    }
}

/// Streams one call to `base` (`ws://HOST:PORT`), with the tenant's API key when one is
/// given (`Authorization: Bearer`); calls `on_message` with every text
/// message the server sends, until the call's record (or the server closing).
pub async fn stream_call(
    base: &str,
    call_id: &str,
    lines: &[Line],
    speed: Speed,
    api_key: Option<&str>,
    mut on_message: impl FnMut(&str),
) -> Result<(), String> {
    let url = format!("{}/v1/calls/{call_id}/stream", base.trim_end_matches('/'));
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("{url}: {e}"))?;
    if let Some(key) = api_key {
        let value = format!("Bearer {key}")
            .parse()
            .map_err(|_| "the API key is not a valid header value".to_string())?;
        request.headers_mut().insert("authorization", value);
    }
    let (ws, _) = connect_async(request)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let (mut tx, mut rx) = ws.split();
    let reader = async {
        while let Some(m) = rx.next().await {
            match m {
                Ok(Message::Text(t)) => {
                    on_message(&t);
                    if t.starts_with("{\"type\":\"record\"") {
                        return Ok(());
                    }
                }
                Ok(Message::Close(_)) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("{url}: {e}")),
            }
        }
        Ok(())
    };
    let writer = async {
        let mut last: Option<u64> = None;
        for l in lines {
            if let (Speed::Times(n), Some(at)) = (speed, at_ms(&l.msg)) {
                if let Some(prev) = last {
                    let wait = at.saturating_sub(prev) as f64 / n;
                    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                }
                last = Some(at);
            }
            tx.send(Message::Text(protocol::encode(&l.msg).into()))
                .await
                .map_err(|e| format!("{url}: {e}"))?;
        }
        Ok::<(), String>(())
    };
    let (r, w) = tokio::join!(reader, writer);
    w.and(r)
}
