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
use vigie_fleet::bundle::{self, SignedBundle};

/// Where the rules come from: the fleet's signed bundle when the agent is
/// centrally managed and has one, else files, else the bundled defaults.
#[derive(Debug, Clone, Default)]
pub struct RuleFiles {
    pub policy: Option<PathBuf>,
    pub catalog: Option<PathBuf>,
    pub fleet: Option<FleetRules>,
}

/// The fleet bundle in force and the key pinned at enrolment.
#[derive(Debug, Clone)]
pub struct FleetRules {
    pub bundle: PathBuf,
    pub key: PathBuf,
}

impl FleetRules {
    /// Verifies the bundle on disk against the pinned key (every load: a
    /// hand-edited bundle is refused, and the rules in force stay).
    pub fn load(&self) -> Result<(Catalog, Policy, u64), LoadError> {
        let refused = |reason: String| LoadError::Refused { path: self.bundle.display().to_string(), reason };
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|error| LoadError::Io { path: path.display().to_string(), error })
        };
        let key_pem =
            String::from_utf8(read(&self.key)?).map_err(|_| refused("the pinned key is not text".into()))?;
        let key = bundle::read_public_key(&key_pem).map_err(|e| refused(e.to_string()))?;
        let signed = SignedBundle::parse(&read(&self.bundle)?).map_err(|e| refused(e.to_string()))?;
        let body = signed.verify(&key).map_err(|e| refused(e.to_string()))?;
        let name = self.bundle.display().to_string();
        let catalog = match &body.catalog {
            Some(text) => Catalog::parse(text, &format!("{name} (catalog)"))?,
            None => Catalog::bundled()?,
        };
        let policy = Policy::parse(&body.policy, &format!("{name} (policy)"), &catalog)?;
        Ok((catalog, policy, body.version))
    }
}

impl RuleFiles {
    /// The rules, and the fleet bundle's version when they come from one.
    pub fn load_versioned(&self) -> Result<(Catalog, Policy, Option<u64>), LoadError> {
        if let Some(fleet) = self.fleet.as_ref().filter(|f| f.bundle.exists()) {
            let (catalog, policy, version) = fleet.load()?;
            return Ok((catalog, policy, Some(version)));
        }
        let (catalog, policy) = self.load_files()?;
        Ok((catalog, policy, None))
    }

    pub fn load(&self) -> Result<(Catalog, Policy), LoadError> {
        self.load_versioned().map(|(catalog, policy, _)| (catalog, policy))
    }

    fn load_files(&self) -> Result<(Catalog, Policy), LoadError> {
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
