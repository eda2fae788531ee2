//! A running job's progress, read back from its log: `xp exec-step` on the
//! node writes the plain reporter's `progress  STEP: DONE[/TOTAL] UNIT MESSAGE`
//! lines there, and the submitting `xp` turns the new ones into
//! [`RunEvent::StepProgress`] so its bars move as for a local run.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::events::{EventSink, RunEvent};

/// Reads `log` from `*offset`, emits the progress of its new complete lines,
/// and moves `*offset` past them. A log not written yet is no news.
pub fn forward(log: &Path, offset: &mut u64, step: &str, events: &dyn EventSink) {
    let Ok(mut file) = std::fs::File::open(log) else {
        return;
    };
    if file.seek(SeekFrom::Start(*offset)).is_err() {
        return;
    }
    let mut new = Vec::new();
    if file.read_to_end(&mut new).is_err() {
        return;
    }
    // Only complete lines: the last one may still be being written.
    let Some(end) = new.iter().rposition(|&b| b == b'\n') else {
        return;
    };
    *offset += end as u64 + 1;
    for line in String::from_utf8_lossy(&new[..end]).lines() {
        if let Some(event) = parse(line, step) {
            events.emit(event);
        }
    }
}

/// `progress  blocks: 2/3 splits tokenizing test` → a progress event.
fn parse(line: &str, step: &str) -> Option<RunEvent> {
    let rest = line.strip_prefix("progress  ")?.strip_prefix(step)?;
    let rest = rest.strip_prefix(": ")?;
    let (count, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let (done, total) = match count.split_once('/') {
        Some((done, total)) => (done.parse().ok()?, Some(total.parse().ok()?)),
        None => (count.parse().ok()?, None),
    };
    let (unit, message) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(RunEvent::StepProgress {
        step: step.to_string(),
        done,
        total,
        unit: unit.to_string(),
        message: message.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<RunEvent>>);

    impl EventSink for Collect {
        fn emit(&self, event: RunEvent) {
            self.0.lock().unwrap().push(event);
        }
    }

    #[test]
    fn new_complete_progress_lines_become_events() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("blocks.log");
        std::fs::write(
            &log,
            "start     blocks (tokenize, abc)\nprogress  blocks: 0/3 splits tokenizing train\nprogress  blocks: 1/3 spl",
        )
        .unwrap();
        let events = Collect::default();
        let mut offset = 0;
        forward(&log, &mut offset, "blocks", &events);
        let mut text = std::fs::read_to_string(&log).unwrap();
        text += "its tokenizing test\nprogress  blocks: 7 rows\n";
        std::fs::write(&log, text).unwrap();
        forward(&log, &mut offset, "blocks", &events);
        forward(&log, &mut offset, "blocks", &events);

        let seen: Vec<(u64, Option<u64>, String, String)> = events
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|e| match e {
                RunEvent::StepProgress {
                    done,
                    total,
                    unit,
                    message,
                    ..
                } => (*done, *total, unit.clone(), message.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            seen,
            [
                (0, Some(3), "splits".into(), "tokenizing train".into()),
                (1, Some(3), "splits".into(), "tokenizing test".into()),
                (7, None, "rows".into(), String::new()),
            ]
        );
        assert!(parse("progress  other: 1/2 x", "blocks").is_none());
    }
}
