//! The catalog and policy in force, shared by every thread. A reload swaps
//! them as one generation; each thread's pipeline picks it up between frames.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use vigie_core::catalog::Catalog;
use vigie_core::diag::LoadError;
use vigie_core::pipeline::Pipeline;
use vigie_core::policy::Policy;
use vigie_core::sensor::Sensor;

/// Where the rules come from: files, or the bundled defaults.
#[derive(Debug, Clone, Default)]
pub struct RuleFiles {
    pub policy: Option<PathBuf>,
    pub catalog: Option<PathBuf>,
}

impl RuleFiles {
    pub fn load(&self) -> Result<(Catalog, Policy), LoadError> {
        let catalog = match &self.catalog {
            Some(path) => Catalog::load(path)?,
            None => Catalog::bundled()?,
        };
        let policy = match &self.policy {
            Some(path) => Policy::load(path, &catalog)?,
            None => Policy::bundled(&catalog)?,
        };
        Ok((catalog, policy))
    }
}

#[derive(Debug)]
pub struct Rules {
    current: RwLock<(Arc<Catalog>, Arc<Policy>)>,
    generation: AtomicU64,
}

impl Rules {
    pub fn new(catalog: Arc<Catalog>, policy: Arc<Policy>) -> Self {
        Self { current: RwLock::new((catalog, policy)), generation: AtomicU64::new(0) }
    }

    /// The catalog and policy in force.
    pub fn current(&self) -> (Arc<Catalog>, Arc<Policy>) {
        match self.current.read() {
            Ok(current) => current.clone(),
            // A writer panicked mid-swap: the pair it held is still whole.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.current().1
    }

    /// Puts a new pair in force.
    pub fn replace(&self, catalog: Arc<Catalog>, policy: Arc<Policy>) {
        let mut current = match self.current.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        *current = (catalog, policy);
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// A thread's pipeline on the rules in force, with the policy at hand
/// (events carry its version); a reload is picked up between frames.
#[derive(Debug)]
pub struct LivePipeline {
    pub pipeline: Pipeline,
    pub catalog: Arc<Catalog>,
    pub policy: Arc<Policy>,
    generation: u64,
}

impl LivePipeline {
    pub fn new(rules: &Rules) -> Self {
        let generation = rules.generation();
        let (catalog, policy) = rules.current();
        let pipeline = Pipeline::new(Sensor::default(), Arc::clone(&catalog), Arc::clone(&policy));
        Self { pipeline, catalog, policy, generation }
    }

    /// Takes the latest rules if a reload happened since the last call.
    pub fn refresh(&mut self, rules: &Rules) {
        let latest = rules.generation();
        if latest == self.generation {
            return;
        }
        let (catalog, policy) = rules.current();
        self.pipeline.set_rules(Arc::clone(&catalog), Arc::clone(&policy));
        self.catalog = catalog;
        self.policy = policy;
        self.generation = latest;
    }
}
