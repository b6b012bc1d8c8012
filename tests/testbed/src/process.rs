use std::fs::File;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's root, where the Makefile installs `.venv`.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root exists")
}

/// A program from the project's virtualenv; `make venv` (which `make test` runs) installs them.
pub(crate) fn venv_program(name: &str) -> PathBuf {
    let path = workspace_root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make venv` (make test and make demo do) to install the test bed",
        path.display()
    );
    path
}

/// The SDK's standard variables that point a client (the function, the CLI) at `endpoint`
/// with moto's test credentials.
pub fn client_env(endpoint: &str) -> [(&'static str, String); 4] {
    [
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
    ]
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("a free port on 127.0.0.1").port()
}

/// A child process that is killed when this guard drops, its output kept in a file.
pub(crate) struct Guarded {
    pub name: String,
    child: Child,
    pub log_path: PathBuf,
}

impl Guarded {
    pub fn spawn(name: &str, command: &mut Command, log_dir: &Path) -> Guarded {
        let log_path = log_dir.join(format!("{name}.log"));
        let log = File::create(&log_path).expect("the log file can be created");
        Self::spawn_into(name, command, log, log_path)
    }

    /// A process whose standard error the caller reads; its standard output is appended to `log_path`.
    pub fn spawn_reading_stderr(name: &str, command: &mut Command, log_path: &Path) -> (Guarded, ChildStderr) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(log_path).expect("the log file can be opened");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("{name} did not start: {error}"));
        let stderr = child.stderr.take().expect("a piped standard error");
        (Guarded { name: name.to_owned(), child, log_path: log_path.to_path_buf() }, stderr)
    }

    fn spawn_into(name: &str, command: &mut Command, log: File, log_path: PathBuf) -> Guarded {
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file handle clones"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("{name} did not start: {error}"));
        Guarded { name: name.to_owned(), child, log_path }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Polls until `127.0.0.1:port` accepts connections, failing fast if the process exits.
    pub fn wait_for_port(&mut self, port: u16, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before listening on {port}:\n{}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {port} within {within:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
