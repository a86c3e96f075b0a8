//! The command line: exit status and messages as protocol.md fixes them.

use std::process::Command;

use super::support::{fixtures, root};

fn keel(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run keel");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
    let files = fixtures();
    let abusive = files
        .iter()
        .find(|f| f.to_string_lossy().contains("06-"))
        .expect("fixture 06");
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

#[test]
fn serve_and_replay_to_drive_a_call_end_to_end() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let data = temp_dir("serve-data");
    let mut server = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
        ])
        .current_dir(root())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start keel serve");
    let mut err = BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();

    let files = fixtures();
    let f = files[0].to_str().unwrap();
    let (code, out, e) = keel(&[
        "replay",
        "--to",
        &format!("ws://{addr}"),
        "--speed",
        "max",
        f,
    ]);
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let status = server.wait().unwrap();
    assert_eq!(code, 0, "{e}");
    let mut lines = out.lines();
    assert!(lines.next().unwrap().contains("\"type\":\"session\""));
    let (_, offline, _) = keel(&["replay", "--format", "json", f]);
    assert_eq!(
        lines.map(|l| format!("{l}\n")).collect::<String>(),
        offline,
        "live over the network equals offline"
    );
    assert!(
        status.success(),
        "SIGTERM shuts the server down cleanly: {status:?}"
    );
}
