//! The command line: exit status and messages as protocol.md fixes them.

use std::process::Command;

use super::support::{fixture, fixtures, root};

fn keel(args: &[&str]) -> (i32, String, String) {
    keel_env(args, &[])
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("keel-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn lexicon_check_passes_on_the_product_set() {
    let (code, out, err) = keel(&["lexicon", "check", "lexicons/"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("categories") && out.contains("entries") && out.contains("examples checked"),
        "{out}"
    );
}

#[test]
fn lexicon_check_names_file_and_line_of_a_malformed_file() {
    let d = temp_dir("malformed");
    std::fs::write(d.join("bad.toml"), "[[category]]\nid = \"x.y\"\nspeaker = \"robot\"\nkind = \"validation\"\nentries = [\"i see\"]\n").unwrap();
    let (code, out, err) = keel(&["lexicon", "check", d.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("bad.toml:3:") && err.contains("speaker"),
        "{err}"
    );
}

#[test]
fn lexicon_check_fails_on_a_failing_example() {
    let d = temp_dir("failing");
    std::fs::write(
        d.join("a.toml"),
        "[[category]]\nid = \"x.y\"\nspeaker = \"agent\"\nkind = \"validation\"\nentries = [\"i see\"]\npositive = [\"I see\", \"nothing here\"]\nnegative = [\"okay\"]\n",
    )
    .unwrap();
    let (code, out, _) = keel(&["lexicon", "check", d.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("a.toml:6: x.y: positive example has no hit"),
        "{out}"
    );
    assert!(out.contains("1 failed"), "{out}");
}

#[test]
fn replay_shows_hits_and_rejects_bad_fixtures_with_file_and_line() {
    let files = fixtures();
    assert!(!files.is_empty(), "fixtures/calls holds recorded calls");
    let f = files[0].to_str().unwrap().to_string();
    let (code, out, err) = keel(&["replay", "--format", "hits", &f]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() > 3, "{out}");

    let d = temp_dir("fixture");
    let bad = d.join("bad.jsonl");
    std::fs::write(&bad, "{\"type\":\"start\",\"call_id\":\"c\"}\n{\"type\":\"transcript\",\"segment_id\":\"s-1\",\"speaker\":\"robot\",\"text\":\"x\",\"is_final\":true}\n").unwrap();
    let (code, _, err) = keel(&["replay", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.jsonl:2: transcript.speaker"), "{err}");
    let (code, _, err) = keel(&["replay", "no/such/file.jsonl"]);
    assert_eq!(code, 2);
    assert!(err.contains("no/such/file.jsonl"), "{err}");
}

#[test]
fn replay_prints_coaching_messages_and_checks_expectations() {
    let files: Vec<String> = fixtures()
        .iter()
        .map(|f| f.to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["replay", "--format", "json"];
    args.extend(files.iter().map(String::as_str));
    let (code, out, err) = keel(&args);
    assert_eq!(code, 0, "{err}");
    let records = out
        .lines()
        .filter(|l| l.starts_with("{\"type\":\"record\""))
        .count();
    assert_eq!(records, files.len(), "one record per call");
    for l in out.lines() {
        keel::protocol::decode_outbound(l).unwrap_or_else(|e| panic!("{l}: {e}"));
    }

    let mut args = vec!["replay", "--check"];
    args.extend(files.iter().map(String::as_str));
    let (code, _, err) = keel(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("{} passed, 0 failed", files.len())),
        "{err}"
    );

    let (code, out, _) = keel(&["replay", "--format", "text", &files[0]]);
    assert_eq!(code, 0);
    assert!(out.contains("scorecard"), "{out}");

    // A fixture whose expectation is wrong fails the check.
    let d = temp_dir("expect");
    let src = std::fs::read_to_string(&files[0]).unwrap();
    let wrong = src.replacen("\"boundary\":\"clear\"", "\"boundary\":\"terminated\"", 1);
    assert_ne!(wrong, src, "fixture 01 expects a clear boundary");
    let bad = d.join("wrong.jsonl");
    std::fs::write(&bad, wrong).unwrap();
    let (code, _, err) = keel(&["replay", "--check", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("boundary: expected terminated"), "{err}");
}

#[test]
fn replay_reads_the_policy_from_a_config_file() {
    let abusive = &fixture("06");
    let d = temp_dir("config");
    let cfg = d.join("keel.toml");
    std::fs::write(&cfg, "[policy]\nwarnings_allowed = 3\n").unwrap();
    let (code, out, err) = keel(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        abusive.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"warnings_allowed\":3"), "{out}");

    std::fs::write(&cfg, "[policy]\nwarnings = 3\n").unwrap();
    let (code, _, err) = keel(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        abusive.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("keel.toml:2:") && err.contains("warnings"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_non_loopback_address_without_authentication() {
    let (code, _, err) = keel(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, 2);
    assert!(err.contains("0.0.0.0") && err.contains("loopback"), "{err}");
}

/// A `keel serve` process, stopped (SIGTERM) when dropped, even by a failing test.
struct Served {
    child: std::process::Child,
    addr: String,
    /// Standard error after the listening line, read by a thread.
    logs: std::sync::mpsc::Receiver<String>,
}

impl Served {
    fn start(args: &[&str], envs: &[(&str, &str)]) -> Served {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .arg("serve")
            .args(args)
            .envs(envs.iter().copied())
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start keel serve");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut addr = None;
        let mut seen = String::new();
        for _ in 0..20 {
            let mut line = String::new();
            if err.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            seen.push_str(&line);
            if let Some(rest) = line.split("listening on http://").nth(1) {
                addr = rest.split_whitespace().next().map(str::to_string);
                break;
            }
        }
        let (tx, logs) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let Some(addr) = addr else {
            let _ = child.kill();
            panic!("keel serve did not start: {seen}");
        };
        Served { child, addr, logs }
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }

    /// Stops the server with SIGTERM; returns whether it exited cleanly.
    fn stop(mut self) -> bool {
        self.signal("-TERM");

        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Waits for a log line containing `needle`.
    fn log_line(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.logs.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no log line with {needle:?}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keel_env(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root())
        .output()
        .expect("run keel");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_and_replay_to_drive_a_call_end_to_end() {
    let data = temp_dir("serve-data");
    let server = Served::start(
        &["--listen", "127.0.0.1:0", "--data", data.to_str().unwrap()],
        &[],
    );
    let files = fixtures();
    let f = files[0].to_str().unwrap();
    let (code, out, e) = keel(&[
        "replay",
        "--to",
        &format!("ws://{}", server.addr),
        "--speed",
        "max",
        f,
    ]);
    assert_eq!(code, 0, "{e}");
    let mut lines = out.lines();
    assert!(lines.next().unwrap().contains("\"type\":\"session\""));
    let (_, offline, _) = keel(&["replay", "--format", "json", f]);
    assert_eq!(
        lines.map(|l| format!("{l}\n")).collect::<String>(),
        offline,
        "live over the network equals offline"
    );
    assert!(server.stop(), "SIGTERM shuts the server down cleanly");
}

#[test]
fn keys_tokens_reload_and_json_logs_from_the_command_line() {
    // `keel key` makes a key and the configuration line holding its hash.
    let (code, out, err) = keel(&["key", "--tenant", "demo"]);
    assert_eq!(code, 0, "{err}");
    let key = out
        .split_whitespace()
        .find(|w| w.starts_with("kk_"))
        .expect("a key")
        .to_string();
    let config_lines: String = out
        .lines()
        .skip_while(|l| !l.contains("Configuration"))
        .skip(1)
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    assert!(!config_lines.contains(&key), "only the hash is configured");
    let dir = temp_dir("serve-auth");
    let config = dir.join("keel.toml");
    std::fs::write(
        &config,
        format!("[server]\nlog_format = \"json\"\n\n{config_lines}"),
    )
    .unwrap();
    let data = dir.join("data");
    let data_s = data.to_str().unwrap();
    let config_s = config.to_str().unwrap();

    let server = Served::start(
        &[
            "--config",
            config_s,
            "--listen",
            "127.0.0.1:0",
            "--data",
            data_s,
        ],
        &[],
    );
    let url = format!("ws://{}", server.addr);
    let files = fixtures();
    let f = files[0].to_str().unwrap();
    let (code, _, e) = keel(&["replay", "--to", &url, f]);
    assert_eq!(code, 1, "no key: refused");
    assert!(e.contains("401"), "{e}");
    let (code, out, e) = keel_env(&["replay", "--to", &url, f], &[("KEEL_API_KEY", &key)]);
    assert_eq!(code, 0, "{e}");
    assert!(out.contains("\"type\":\"record\""), "{out}");
    assert!(out.contains("\"tenant\":\"demo\""), "{out}");
    // JSON logs name their events and never carry transcript text or the key.
    let started = server.log_line("call_started");
    let v: serde_json::Value = serde_json::from_str(&started).expect("a JSON log line");
    assert_eq!(v["event"], "call_started");
    assert_eq!(v["tenant"], "demo");

    // `keel token` signs with the server's secret (kept in its data folder).
    let (code, token, err) = keel(&[
        "token", "--tenant", "demo", "--call", "c-cli", "--ttl", "5m", "--config", config_s,
        "--data", data_s,
    ]);
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_string();
    let secret = std::fs::read_to_string(data.join("token-secret")).unwrap();
    let claims = keel::server::auth::verify(
        secret.trim().as_bytes(),
        &token,
        keel::server::auth::now_secs(),
    )
    .expect("the server's secret verifies the token");
    assert_eq!(claims.tenant, "demo");
    let (code, _, err) = keel(&[
        "token", "--tenant", "globex", "--call", "c-cli", "--config", config_s, "--data", data_s,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--tenant globex"), "{err}");
    let addr = server.addr.clone();
    let opened = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let mut r = format!("ws://{addr}/v1/calls/c-cli/nudges")
                .into_client_request()
                .unwrap();
            r.headers_mut().insert(
                "sec-websocket-protocol",
                format!("keel.v1, keel.token.{token}").parse().unwrap(),
            );
            tokio_tungstenite::connect_async(r).await.is_ok()
        });
    assert!(opened, "the minted token opens the call's feed");

    // SIGHUP reloads the lexicon set.
    server.signal("-HUP");
    let reloaded = server.log_line("lexicon_reloaded");
    assert!(reloaded.contains("version"), "{reloaded}");
    for l in server.logs.try_iter() {
        assert!(!l.contains(&key), "a log line carries the key: {l}");
    }
    assert!(server.stop(), "SIGTERM shuts the server down cleanly");
}

#[test]
fn replay_reads_calls_archived_as_stm_and_seglst() {
    use keel::protocol::Inbound;
    let f = &fixture("06");
    let mut finals: Vec<keel::protocol::Transcript> = keel::replay::read_fixture(f)
        .unwrap()
        .into_iter()
        .filter_map(|l| match l.msg {
            Inbound::Transcript(t) if t.is_final => Some(t),
            _ => None,
        })
        .collect();
    finals.sort_by_key(|t| (t.start_ms, t.end_ms));
    let dir = temp_dir("archive");
    // The same call three ways: native JSON Lines, STM, SegLST.
    let mut native = String::from("{\"type\":\"start\",\"call_id\":\"arch-1\"}\n");
    let mut stm = String::from(";; call 06 as an STM archive\n");
    let mut seglst = Vec::new();
    for (i, t) in finals.iter().enumerate() {
        let speaker = if t.speaker == keel::protocol::Role::Agent {
            "A1"
        } else {
            "C1"
        };
        let (s, e) = (t.start_ms.unwrap(), t.end_ms.unwrap());
        native.push_str(&format!(
            "{{\"type\":\"transcript\",\"segment_id\":\"seg-{}\",\"speaker\":\"{}\",\"text\":{},\"is_final\":true,\"start_ms\":{s},\"end_ms\":{e}}}\n",
            i + 1,
            t.speaker,
            serde_json::to_string(&t.text).unwrap()
        ));
        stm.push_str(&format!(
            "arch-1 1 {speaker} {:.3} {:.3} <o,f0,unknown> {}\n",
            s as f64 / 1000.0,
            e as f64 / 1000.0,
            t.text
        ));
        seglst.push(
            serde_json::json!({"session_id": "arch-1", "speaker": speaker, "words": t.text,
            "start_time": s as f64 / 1000.0, "end_time": e as f64 / 1000.0}),
        );
    }
    native.push_str("{\"type\":\"end\",\"reason\":\"completed\"}\n");
    let (n, st, sg) = (
        dir.join("call.jsonl"),
        dir.join("call.stm"),
        dir.join("call.json"),
    );
    std::fs::write(&n, native).unwrap();
    std::fs::write(&st, stm).unwrap();
    std::fs::write(&sg, serde_json::to_string_pretty(&seglst).unwrap()).unwrap();
    let (code, want, err) = keel(&["replay", n.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(want.contains("\"abuse_incidents\":2"), "{want}");
    let roles = "agent=A1,customer=C1";
    for (input, file) in [("stm", &st), ("seglst", &sg)] {
        let (code, got, err) = keel(&[
            "replay",
            "--input",
            input,
            "--roles",
            roles,
            file.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{input}: {err}");
        assert_eq!(
            got, want,
            "{input}: the archive coaches like the native recording"
        );
    }
    // A speaker without a role is an error naming it and its line.
    let (code, _, err) = keel(&[
        "replay",
        "--input",
        "stm",
        "--roles",
        "agent=A1",
        st.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("C1") && err.contains("call.stm:"), "{err}");
    let (code, _, err) = keel(&["replay", "--input", "stm", st.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("--roles"), "{err}");
}
