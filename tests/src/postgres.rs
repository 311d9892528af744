//! A throwaway PostgreSQL server from Debian's packages: `initdb` and
//! `pg_ctl` on a temporary directory, reachable only through a Unix socket
//! in it. Stopped (by its postmaster's pid) and deleted on drop, failed
//! test or not.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

#[derive(Debug)]
pub struct TempPostgres {
    dir: PathBuf,
    bin: PathBuf,
    /// Run the server tools as this user (root may not run PostgreSQL).
    user: Option<String>,
}

fn bin_dir() -> Result<PathBuf> {
    for version in ["17", "16", "15"] {
        let bin = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"));
        if bin.join("initdb").exists() {
            return Ok(bin);
        }
    }
    bail!("PostgreSQL is not installed (apt-get install postgresql-15; tests/run.sh does it)")
}

impl TempPostgres {
    pub fn start() -> Result<Self> {
        let bin = bin_dir()?;
        let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout.trim_ascii() == b"0")?;
        let user = is_root.then(|| "postgres".to_owned());
        let dir = std::env::temp_dir().join(format!("vigie-pg-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir)?;
        let server = Self { dir, bin, user };
        if let Some(user) = &server.user {
            let status = Command::new("chown").arg(user).arg(&server.dir).status()?;
            if !status.success() {
                bail!("chown {user} {}", server.dir.display());
            }
        }
        server.tool(
            "initdb",
            &["-D", &server.data(), "-U", "vigie", "--auth=trust", "-E", "UTF8", "--no-sync"],
        )?;
        let options =
            format!("-c listen_addresses='' -k {} -c fsync=off -c max_connections=60", server.dir.display());
        server.tool(
            "pg_ctl",
            &["-D", &server.data(), "-o", &options, "-w", "-t", "30", "-l", &server.log(), "start"],
        )?;
        server.psql("postgres", "CREATE DATABASE vigie")?;
        Ok(server)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn log(&self) -> String {
        self.dir.join("server.log").display().to_string()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The libpq connection string of the `vigie` database.
    pub fn connection(&self) -> String {
        format!("host={} user=vigie dbname=vigie", self.dir.display())
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        }
    }

    fn tool(&self, program: &str, args: &[&str]) -> Result<()> {
        let output = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| program.to_owned())?;
        if !output.status.success() {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            bail!("{program} failed: {}\n{log}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(())
    }

    /// Runs SQL with psql; returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let output = self
            .command("psql")
            .args([
                "-h",
                &self.dir.display().to_string(),
                "-U",
                "vigie",
                "-d",
                database,
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .context("psql")?;
        if !output.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Stops the server (fast shutdown), as an outage would.
    pub fn stop(&self) -> Result<()> {
        self.tool("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"])
    }

    /// Starts it again after [`stop`](Self::stop).
    pub fn restart(&self) -> Result<()> {
        let options =
            format!("-c listen_addresses='' -k {} -c fsync=off -c max_connections=60", self.dir.display());
        self.tool(
            "pg_ctl",
            &["-D", &self.data(), "-o", &options, "-w", "-t", "30", "-l", &self.log(), "start"],
        )
    }

    /// The postmaster's pid, from its pid file.
    fn pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // SIGQUIT: immediate shutdown; then wait for the pid to go.
            let _ = Command::new("kill").args(["-QUIT", &pid.to_string()]).status();
            for _ in 0..100 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) << 16 | NEXT.fetch_add(1, Ordering::Relaxed)
}
