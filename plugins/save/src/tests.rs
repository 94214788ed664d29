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

#[test]
fn a_slow_disk_makes_flows_wait_and_says_so_but_loses_nothing() {
    // A FIFO whose reader starts late stands in for a disk that cannot keep up.
    let dir = temp_path("fifo");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("slow");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        return;
    }
    let reader = std::thread::spawn({
        let fifo = fifo.clone();
        move || {
            let mut file = std::fs::File::open(&fifo).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            let mut all = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut all).unwrap();
            all
        }
    });
    let writer = Writer::with_queue_limit(fifo.to_str().unwrap(), 4096).unwrap();
    let record = vec![b'r'; 1024];
    for _ in 0..200 {
        writer.push(&record);
    }
    let counters = writer.close();
    drop(writer);
    let received = reader.join().unwrap();
    assert_eq!((counters.saved, counters.lost), (200, 0));
    assert!(counters.waits > 0, "{counters:?}");
    assert_eq!(received.len(), 200 * 1024);
}
