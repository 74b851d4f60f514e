//! Crash points for the crash-safety tests: with the `failpoints` feature and
//! `FAILPOINTS=name=return`, the process aborts at that point (no unwinding, no cleanup), as
//! a killed container would. `FAILPOINTS=name=panic` (or `name=1*panic`, once) panics there
//! instead, as a bug would: the integration at hand must be reported Failed and the others
//! carry on (tests/hostile/tenants.rs). Without the feature they compile to nothing.

/// Aborts the process here when the named fail point is configured.
#[macro_export]
macro_rules! crash_point {
    ($name:expr) => {
        #[cfg(feature = "failpoints")]
        {
            if let Some(()) = fail::eval($name, |_| ()) {
                eprintln!("crash point {} reached: aborting", $name);
                std::process::abort();
            }
        }
    };
}

/// Reads `FAILPOINTS` from the environment; keep the guard for the life of the process.
#[cfg(feature = "failpoints")]
pub fn setup() -> Option<fail::FailScenario<'static>> {
    Some(fail::FailScenario::setup())
}

#[cfg(not(feature = "failpoints"))]
pub fn setup() -> Option<()> {
    None
}
