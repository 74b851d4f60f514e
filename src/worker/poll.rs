//! A poll integration's turn in a run: its windows due, under the integration's lease, into
//! the run's sink and state; each window reported as a finished folder is.

use chrono::Utc;

use super::{FolderReport, IntegrationError, IntegrationReport, Worker};
use crate::poll::{PollSettings, Poller};
use crate::settings::IntegrationSettings;

impl Worker {
    pub(super) async fn poll(
        &self,
        integration: &IntegrationSettings,
        settings: &PollSettings,
        lease: i64,
        report: &mut IntegrationReport,
    ) -> Result<(), IntegrationError> {
        let endpoint = crate::poll::endpoint(settings, self.settings.egress.clone())?;
        let poller = Poller {
            integration: &integration.name,
            entity: integration.entity,
            rules: &integration.rules,
            settings,
            endpoint: &endpoint,
            sink: &self.sink,
            state: self.state.as_ref(),
            lease: Some(lease),
        };
        let run = poller.run(Utc::now(), &self.stop).await;
        for window in run.windows {
            report.folders.push(FolderReport {
                folder: window.window.key(),
                target: "the sink".to_string(),
                success: Some(true),
                records: window.records,
                files: window.pages,
                left: Vec::new(),
            });
        }
        report.stopped |= self.stop.is_cancelled();
        match run.error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}
