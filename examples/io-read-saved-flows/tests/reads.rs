//! The program run as a user runs it: on a flow file with three flows, then on the same file
//! cut short.

use std::{path::Path, process::Command};

use interpose::capture::flowfile::write_flow;
use interpose_plugin_abi::testing;

/// Runs the program on `file`: whether it succeeded, and its stdout.
fn read_saved_flows(file: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_io-read-saved-flows"))
        .arg(file)
        .output()
        .expect("run io-read-saved-flows");
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        output.status.success(),
        String::from_utf8(output.stdout).expect("utf-8"),
    )
}

#[test]
fn prints_every_flow_and_reports_a_truncated_file() {
    let dir = std::env::temp_dir().join(format!("io-read-saved-flows-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("capture.mitm");
    let paths = ["/a", "/b?x=1", "/c/d"];
    let mut bytes = Vec::new();
    for path in paths {
        let mut flow = testing::flow_with_response();
        flow.request.path = path.into();
        write_flow(&flow, &mut bytes);
    }
    std::fs::write(&file, &bytes).unwrap();

    let (ok, out) = read_saved_flows(&file);
    assert!(ok, "{out}");
    let host = testing::flow().request.host.to_string();
    for path in paths {
        let summary = format!("GET http://{host}{path} << 200 OK ");
        let at = out
            .lines()
            .position(|l| l.starts_with(&summary))
            .unwrap_or_else(|| panic!("no {summary:?} in\n{out}"));
        let mut rest = out.lines().skip(at + 1);
        assert_eq!(rest.next(), Some(host.as_str()), "{out}");
        assert_eq!(rest.next(), Some("{"), "{out}");
        // The state, nested: the request's path, as mitmproxy keeps it (bytes).
        let state: Vec<&str> = rest.take_while(|l| *l != "}").collect();
        assert!(state.contains(&"  type: \"http\","), "{out}");
        assert!(state.contains(&"  request: {"), "{out}");
        assert!(
            state.contains(&format!("    path: b\"{path}\",").as_str()),
            "{out}"
        );
        assert!(state.contains(&"    status_code: 200,"), "{out}");
    }
    assert!(!out.contains("Flow file corrupted"), "{out}");

    let truncated = dir.join("truncated.mitm");
    std::fs::write(&truncated, &bytes[..bytes.len() - 5]).unwrap();
    let (ok, out) = read_saved_flows(&truncated);
    assert!(!ok, "{out}");
    assert_eq!(out.lines().filter(|l| *l == host).count(), 2, "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("Flow file corrupted: the flow file ends inside the record at byte "),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
