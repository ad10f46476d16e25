//! SPEC §8 (a config error stops start-up with a message naming the key, the value
//! and why) and STYLE 6 (the shipped example configs load), through the library
//! and through the `dns64d` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dns64d::config::Config;

const BINARY: &str = env!("CARGO_BIN_EXE_dns64d");
/// A broken config must stop the binary long before this.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// A config file in the temp directory, removed when dropped.
struct TempConfig(PathBuf);

impl TempConfig {
    fn new(contents: &str) -> TempConfig {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "dns64d-integration-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).expect("write temp config");
        TempConfig(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the binary with `args`; kills it (this child only) if it outlives the deadline.
fn run(args: &[&std::ffi::OsStr]) -> Output {
    let mut child = Command::new(BINARY)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dns64d");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if started.elapsed() > EXIT_DEADLINE {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect output");
            panic!(
                "dns64d {args:?} still running after {EXIT_DEADLINE:?}\nstderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Valid except for the `[dns64]` keys given.
fn with_dns64(keys: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:9\"]\n[dns64]\n{keys}\n"
    )
}

#[test]
fn dns64d_with_an_unknown_key_exits_nonzero_naming_the_key() {
    let file = TempConfig::new(&with_dns64("prefixs = [\"64:ff9b::/96\"]"));
    let output = run(&["--config".as_ref(), file.path().as_os_str()]);
    assert!(!output.status.success(), "exit status {}", output.status);
    assert!(text(&output).contains("prefixs"), "{}", text(&output));
}

#[test]
fn dns64d_with_a_bad_prefix_length_exits_nonzero_naming_the_key() {
    let file = TempConfig::new(&with_dns64("prefixes = [\"64:ff9b::/95\"]"));
    let output = run(&["--config".as_ref(), file.path().as_os_str()]);
    assert!(!output.status.success(), "exit status {}", output.status);
    assert!(text(&output).contains("prefixes"), "{}", text(&output));
}

#[test]
fn check_config_exits_1_naming_the_key_and_the_value() {
    let file = TempConfig::new("[filter]\na = \"drop\"\n");
    let output = run(&["check-config".as_ref(), file.path().as_os_str()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let message = text(&output);
    assert!(message.contains("filter.a"), "key named: {message}");
    assert!(message.contains("drop"), "value named: {message}");
}

#[test]
fn check_config_names_a_bad_prefix_and_its_value() {
    let file = TempConfig::new(&with_dns64("prefixes = [\"64:ff9b::/95\"]"));
    let output = run(&["check-config".as_ref(), file.path().as_os_str()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let message = text(&output);
    assert!(message.contains("dns64.prefixes"), "key named: {message}");
    assert!(message.contains("64:ff9b::/95"), "value named: {message}");
}

#[test]
fn check_config_prints_the_effective_config_with_defaults_filled_in() {
    let file = TempConfig::new(&with_dns64("prefixes = [\"2001:db8:64::/96\"]"));
    let output = run(&["check-config".as_ref(), file.path().as_os_str()]);
    assert!(output.status.success(), "{}", text(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("2001:db8:64::/96"),
        "given value: {printed}"
    );
    assert!(printed.contains("udp_payload"), "defaulted key: {printed}");
    assert!(printed.contains("1232"), "its default: {printed}");
}

/// The error message for `toml`, which must be rejected.
fn rejection(toml: &str) -> String {
    match Config::from_toml(toml) {
        Ok(_) => panic!("config accepted:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn config_from_toml_rejects_an_unknown_key_naming_it() {
    let err = rejection("[server]\nlisten_on = [\"127.0.0.1:0\"]\n");
    assert!(err.contains("listen_on"), "{err}");
}

#[test]
fn config_from_toml_rejects_prefix_lengths_outside_rfc6052() {
    for bad in ["64:ff9b::/95", "64:ff9b::/128", "2001:db8::/24"] {
        let err = rejection(&format!("[dns64]\nprefixes = [\"{bad}\"]\n"));
        assert!(err.contains(bad), "value named: {err}");
    }
}

#[test]
fn config_from_toml_accepts_every_rfc6052_prefix_length() {
    for len in [32, 40, 48, 56, 64, 96] {
        let toml = format!("[dns64]\nprefixes = [\"2001:db8::/{len}\"]\n");
        if let Err(e) = Config::from_toml(&toml) {
            panic!("/{len} rejected: {e}");
        }
    }
}

#[test]
fn config_from_toml_rejects_an_unknown_filter_mode_naming_it() {
    let err = rejection("[filter]\na = \"drop\"\n");
    assert!(err.contains("drop"), "{err}");
}

#[test]
fn config_from_toml_rejects_a_malformed_duration_naming_it() {
    let err = rejection("[upstream]\ntimeout = \"soon\"\n");
    assert!(err.contains("soon"), "{err}");
}

#[test]
fn config_from_toml_accepts_every_duration_form() {
    for value in ["\"2s\"", "\"500ms\"", "3"] {
        if let Err(e) = Config::from_toml(&format!("[upstream]\ntimeout = {value}\n")) {
            panic!("timeout = {value} rejected: {e}");
        }
    }
}

#[test]
fn the_shipped_example_configs_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).expect("config/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).expect("read");
            if let Err(e) = Config::from_toml(&text) {
                panic!("{} rejected: {e}", path.display());
            }
            loaded += 1;
        }
    }
    assert!(loaded > 0, "no example configs in {}", dir.display());
}
