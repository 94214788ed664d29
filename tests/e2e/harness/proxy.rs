//! The real `interpose` binary, started on a free port, with its log captured.

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

/// How long to wait for a log line or for the process to exit.
const WAIT: Duration = Duration::from_secs(20);

/// Builds the command line of a proxy run.
pub struct ProxyBuilder {
    args: Vec<String>,
    plugins_dir: Option<PathBuf>,
    home: Option<PathBuf>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    port: u16,
}

impl ProxyBuilder {
    /// Adds command-line arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Runs in reverse mode in front of `upstream`.
    pub fn reverse(self, upstream: SocketAddr) -> Self {
        self.args(["--mode".to_string(), format!("reverse:http://{upstream}")])
    }

    /// Loads the plugin at `path` with `--plugin`.
    pub fn plugin(self, path: &Path) -> Self {
        self.args(["--plugin".to_string(), path.display().to_string()])
    }

    /// Sets option `name` to `value` with `--set name=value`.
    pub fn set(self, name: &str, value: &str) -> Self {
        self.args(["--set".to_string(), format!("{name}={value}")])
    }

    /// Uses `dir` as the plugins folder (the default is a fresh empty one, so that the
    /// machine's `~/.interpose/plugins` never leaks into a test).
    pub fn plugins_dir(mut self, dir: &Path) -> Self {
        self.plugins_dir = Some(dir.to_path_buf());
        self
    }

    /// Uses `dir` as the configuration folder (`--confdir`), where config.yaml is read.
    pub fn confdir(self, dir: &Path) -> Self {
        self.args(["--confdir".to_string(), dir.display().to_string()])
    }

    /// Runs with `HOME` set to `dir`, so that the default confdir is `dir/.interpose` (the
    /// default is a fresh empty folder, so that the machine's `~/.interpose` never leaks into
    /// a test).
    pub fn home(mut self, dir: &Path) -> Self {
        self.home = Some(dir.to_path_buf());
        self
    }

    /// Listens on `port` instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets an environment variable for the proxy process (fixtures read their settings so).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Runs the proxy in `dir` (the default is the test's own working directory).
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// The command with the test's `HOME` and no arguments yet.
    fn command(&self) -> Command {
        let home = self.home.clone().unwrap_or_else(|| super::temp_dir("home"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_interpose"));
        command
            .env("HOME", &home)
            .env("USERPROFILE", &home)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        command
    }

    /// Runs the binary with exactly the arguments given (no `-p 0`, no plugins folder: for
    /// `--options` and startup errors) until it exits, and returns what it printed.
    pub fn run(self) -> Finished {
        let mut child = self
            .command()
            .args(&self.args)
            .spawn()
            .expect("start interpose");
        let readers: Vec<_> = [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ]
        .into_iter()
        .map(|mut stream| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stream.read_to_string(&mut text);
                text
            })
        })
        .collect();
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!("interpose {:?} did not exit within {WAIT:?}", self.args);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut texts = readers.into_iter().map(|r| r.join().expect("reader"));
        Finished {
            status,
            stdout: texts.next().unwrap_or_default(),
            stderr: texts.next().unwrap_or_default(),
        }
    }

    /// Starts the proxy on a free port (`-p 0`) and waits until it listens.
    pub fn start(self) -> Proxy {
        let plugins_dir = self
            .plugins_dir
            .clone()
            .unwrap_or_else(|| super::temp_dir("no-plugins"));
        let mut child = self
            .command()
            .args(["-p", &self.port.to_string(), "--plugins-dir"])
            .arg(&plugins_dir)
            .args(&self.args)
            .spawn()
            .expect("start interpose");
        let log = Arc::new(Log::default());
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    log.push(line);
                }
            });
        }
        let mut proxy = Proxy {
            child,
            log,
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        let line = proxy.wait_for_listening();
        let addr = line
            .rsplit("listening at ")
            .next()
            .and_then(|rest| rest.trim_end_matches('.').parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        proxy.addr = addr;
        proxy
    }
}

/// What a run to completion printed, and how it ended.
pub struct Finished {
    /// The exit status.
    pub status: ExitStatus,
    /// Everything on stdout (the log, `--options`).
    pub stdout: String,
    /// Everything on stderr (startup errors).
    pub stderr: String,
}

#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl Log {
    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
        self.grew.notify_all();
    }
}

/// A running `interpose` process.
pub struct Proxy {
    child: Child,
    log: Arc<Log>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Proxy {
    /// A proxy with no plugins and default settings.
    pub fn builder() -> ProxyBuilder {
        ProxyBuilder {
            args: Vec::new(),
            plugins_dir: None,
            home: None,
            env: Vec::new(),
            cwd: None,
            port: 0,
        }
    }

    /// Every log line so far (stdout and stderr).
    pub fn log(&self) -> Vec<String> {
        self.log.lines.lock().unwrap().clone()
    }

    /// The log so far, for failure messages.
    pub fn dump(&self) -> String {
        self.log().join("\n")
    }

    /// Lines containing `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The most memory the process has held so far (its peak resident set, `VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        self.status_kib("VmHWM:") * 1024
    }

    /// The proxy's resident memory now, in bytes.
    pub fn rss(&self) -> u64 {
        self.status_kib("VmRSS:") * 1024
    }

    /// How many file descriptors the proxy has open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }

    /// A `kB` field of /proc/PID/status.
    fn status_kib(&self, field: &str) -> u64 {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {field} in {path}:\n{status}"))
    }

    /// Waits for the "listening at" line, failing at once if the process exits first (a
    /// rejected command line, say) instead of after the whole wait.
    fn wait_for_listening(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(line) = self.lines_with("listening at ").pop() {
                return line;
            }
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "interpose exited ({status}) before listening; log:\n{}",
                    self.dump()
                );
            }
            assert!(
                Instant::now() < deadline,
                "interpose did not listen within {WAIT:?}; log:\n{}",
                self.dump()
            );
            let lines = self.log.lines.lock().unwrap();
            drop(self.log.grew.wait_timeout(lines, Duration::from_millis(50)));
        }
    }

    /// Waits for a line containing `needle` and returns it.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.wait_for_count(needle, 1).pop().expect("one line")
    }

    /// Waits until `count` lines contain `needle`; returns them.
    pub fn wait_for_count(&self, needle: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut lines = self.log.lines.lock().unwrap();
        loop {
            let found: Vec<String> = lines
                .iter()
                .filter(|l| l.contains(needle))
                .cloned()
                .collect();
            if found.len() >= count {
                return found;
            }
            let now = Instant::now();
            if now >= deadline {
                let all = lines.join("\n");
                panic!("waited {WAIT:?} for {count} log lines with {needle:?}; log:\n{all}");
            }
            lines = self.log.grew.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// Waits for the process to exit on its own.
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        self.wait_exit("on its own")
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id() as i32;
        // SAFETY: plain FFI call with a pid we own and a valid signal number.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        self.wait_exit("after SIGTERM")
    }

    /// Waits for the process to exit, failing the test after `WAIT` (`when` says what was
    /// expected to end it).
    fn wait_exit(&mut self, when: &str) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "interpose did not exit {when} within {WAIT:?}; log:\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
