use super::writer::Writer;

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("interpose-save-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("sub").join("flows")
}

#[test]
fn writes_every_record_in_order_and_appends_with_plus() {
    let path = temp_path("order");
    let writer = Writer::open(path.to_str().unwrap()).unwrap();
    for i in 0..1000 {
        writer.push(format!("{i};").as_bytes());
    }
    let counters = writer.close();
    assert_eq!((counters.saved, counters.lost), (1000, 0));
    let expected: String = (0..1000).map(|i| format!("{i};")).collect();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);

    let writer = Writer::open(&format!("+{}", path.display())).unwrap();
    writer.push(b"more");
    writer.close();
    assert!(std::fs::read_to_string(&path).unwrap().ends_with(";more"));

    let writer = Writer::open(path.to_str().unwrap()).unwrap();
    writer.push(b"new");
    writer.close();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
}

#[test]
fn a_full_disk_loses_flows_visibly_and_the_writer_goes_on() {
    if !std::path::Path::new("/dev/full").exists() {
        return;
    }
    let writer = Writer::open("/dev/full").unwrap();
    writer.push(b"one");
    writer.push(b"two");
    let counters = writer.close();
    assert_eq!(counters.saved, 0);
    assert_eq!(counters.lost, 2);
    let (message, _) = counters.unreported.expect("the error is reported");
    assert!(message.contains("space"), "{message}");
}

#[test]
fn unopenable_paths_are_errors() {
    let path = temp_path("dir");
    std::fs::create_dir_all(&path).unwrap();
    assert!(Writer::open(path.to_str().unwrap()).is_err());
}
