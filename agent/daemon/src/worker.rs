//! A background thread the daemon's loop keeps running (the fleet upload,
//! the SIEM lines): started when due, joined and reported when it ends,
//! tried again at most once per period.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::error;

pub struct Worker {
    /// What the log calls it ("fleet upload", "SIEM export").
    what: &'static str,
    every: Duration,
    running: Option<(JoinHandle<anyhow::Result<()>>, Arc<AtomicBool>)>,
    last_try: Option<Instant>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("what", &self.what).field("running", &self.running.is_some()).finish()
    }
}

impl Worker {
    pub fn new(what: &'static str, every: Duration) -> Self {
        Self { what, every, running: None, last_try: None }
    }

    /// Whether it runs; a thread that ended is joined, and its error or
    /// panic reported.
    pub fn is_running(&mut self) -> bool {
        match &self.running {
            Some((handle, _)) if !handle.is_finished() => return true,
            Some(_) => {}
            None => return false,
        }
        if let Some((handle, _)) = self.running.take() {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    error!(error = %format!("{e:#}"), "{} stopped; started again shortly", self.what);
                }
                Err(_) => error!("{} thread panicked; started again shortly", self.what),
            }
        }
        false
    }

    /// Whether a (re)start may be tried now: once per period at most.
    pub fn due(&mut self) -> bool {
        let now = Instant::now();
        if self.last_try.is_some_and(|at| now.duration_since(at) < self.every) {
            return false;
        }
        self.last_try = Some(now);
        true
    }

    /// Starts `work` on a thread named `name`; it ends when the flag it gets is set.
    pub fn start(
        &mut self,
        name: &str,
        work: impl FnOnce(&AtomicBool) -> anyhow::Result<()> + Send + 'static,
    ) {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        match std::thread::Builder::new().name(name.to_owned()).spawn(move || work(&flag)) {
            Ok(handle) => self.running = Some((handle, stop)),
            Err(e) => error!(error = %e, "cannot start the {}", self.what),
        }
    }

    /// Asks it to stop; with `wait`, joins it.
    pub fn stop(&mut self, wait: bool) {
        if let Some((handle, stop)) = self.running.take() {
            stop.store(true, Ordering::Relaxed);
            if wait {
                let _ = handle.join();
            } else {
                // Not joined (it may be inside a request): it ends on its own.
                drop(handle);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_ends_is_reaped_and_tried_again_once_per_period() {
        let mut worker = Worker::new("test", Duration::from_millis(200));
        assert!(worker.due() && !worker.due(), "once per period");
        worker.start("w", |_| anyhow::bail!("broken"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while worker.is_running() {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(220));
        assert!(worker.due(), "due again after the period");
        // One that runs until asked: stop with wait joins it.
        worker.start("w", |stop| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        });
        assert!(worker.is_running());
        worker.stop(true);
        assert!(!worker.is_running());
    }
}
