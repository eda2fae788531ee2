//! Consumers of run events: progress bars on a terminal, plain lines in a log,
//! JSON lines for scripts.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{EventSink, RunEvent, RunReason};

/// Picks the reporter: JSON when asked, bars on a terminal, plain lines otherwise.
pub fn for_output(json: bool) -> Box<dyn EventSink> {
    if json {
        Box::new(JsonReporter)
    } else if std::io::stderr().is_terminal() {
        Box::new(BarReporter::new())
    } else {
        Box::new(PlainReporter::default())
    }
}

/// One JSON object per line on stdout.
pub struct JsonReporter;

impl EventSink for JsonReporter {
    fn emit(&self, event: RunEvent) {
        if let Ok(line) = serde_json::to_string(&event) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        }
    }
}

fn reason_text(reason: &RunReason) -> String {
    match reason {
        RunReason::NotCached => String::new(),
        RunReason::Forced => " (forced)".into(),
        RunReason::Corrupt { files } => format!(
            " (cached entry was corrupt: {}; recomputing)",
            files.join(", ")
        ),
    }
}

/// The line printed for every event but progress; None for progress.
fn line_for(event: &RunEvent) -> Option<String> {
    Some(match event {
        RunEvent::RunStarted {
            experiment,
            steps,
            to_run,
        } => {
            format!("running `{experiment}`: {steps} steps, {to_run} to execute")
        }
        RunEvent::StepCached { step, key } => format!("cached    {step} ({})", key.short()),
        RunEvent::StepWaiting { step, holder, .. } => format!("waiting   {step}: {holder}"),
        RunEvent::StepStarted {
            step,
            key,
            kind,
            reason,
        } => {
            format!(
                "start     {step} ({kind}, {}){}",
                key.short(),
                reason_text(reason)
            )
        }
        RunEvent::StepProgress { .. } => return None,
        RunEvent::StepFinished {
            step,
            duration,
            by_other_process,
            ..
        } => {
            if *by_other_process {
                format!("done      {step} (by another xp process)")
            } else {
                format!("done      {step} in {}", human(*duration))
            }
        }
        RunEvent::StepFailed { step, error, .. } => format!("FAILED    {step}: {error}"),
        RunEvent::StepRetrying {
            step,
            attempt,
            max_attempts,
            why,
            ..
        } => format!("retry     {step} (attempt {attempt} of {max_attempts}): {why}"),
        RunEvent::StepPulled {
            step,
            bytes,
            duration,
            ..
        } => format!(
            "pulled    {step} from the remote cache ({} in {})",
            human_bytes(*bytes),
            human(*duration)
        ),
        RunEvent::StepPushed {
            step, files, bytes, ..
        } => format!(
            "pushed    {step} to the remote cache ({files} new files, {})",
            human_bytes(*bytes)
        ),
        RunEvent::RemoteProblem { step, problem, .. } => {
            format!("warning   {step}: {problem}")
        }
        RunEvent::StepSkipped {
            step,
            failed_dependency,
        } => {
            format!("skipped   {step} (depends on failed `{failed_dependency}`)")
        }
        RunEvent::RunFinished {
            executed,
            cached,
            failed,
            skipped,
            duration,
        } => {
            let mut s = format!("{executed} executed, {cached} cached");
            if *failed > 0 {
                s += &format!(", {failed} FAILED, {skipped} skipped");
            }
            s + &format!(" in {}", human(*duration))
        }
    })
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b < 1 << 10 => format!("{b} B"),
        b if b < 1 << 20 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    }
}

/// Plain lines on stderr; progress at most every 10 s per step.
#[derive(Default)]
pub struct PlainReporter {
    last_progress: Mutex<HashMap<String, Instant>>,
}

impl EventSink for PlainReporter {
    fn emit(&self, event: RunEvent) {
        if let RunEvent::StepProgress {
            step,
            done,
            total,
            unit,
            message,
        } = &event
        {
            let mut last = self.last_progress.lock().expect("reporter lock");
            let now = Instant::now();
            let due = last
                .get(step)
                .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(10));
            let finished = total.is_some_and(|t| *done >= t);
            if due || finished {
                last.insert(step.clone(), now);
                let of = total.map(|t| format!("/{t}")).unwrap_or_default();
                eprintln!("progress  {step}: {done}{of} {unit} {message}");
            }
            return;
        }
        if let Some(line) = line_for(&event) {
            eprintln!("{line}");
        }
    }
}

/// indicatif bars: one per running step, lines above them for the rest.
pub struct BarReporter {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl BarReporter {
    fn new() -> Self {
        BarReporter {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::default(),
        }
    }

    fn style(known_total: bool) -> ProgressStyle {
        let template = if known_total {
            "{spinner} {prefix:.bold} [{bar:30}] {pos}/{len} {msg} ({per_sec}, ETA {eta})"
        } else {
            "{spinner} {prefix:.bold} {msg} ({elapsed})"
        };
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> ")
    }
}

impl EventSink for BarReporter {
    fn emit(&self, event: RunEvent) {
        let mut bars = self.bars.lock().expect("reporter lock");
        match &event {
            RunEvent::StepStarted { step, .. } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(Self::style(false));
                bar.set_prefix(step.clone());
                bar.enable_steady_tick(Duration::from_millis(200));
                bars.insert(step.clone(), bar);
            }
            RunEvent::StepProgress {
                step,
                done,
                total,
                unit,
                message,
            } => {
                if let Some(bar) = bars.get(step) {
                    if let Some(total) = total
                        && bar.length() != Some(*total)
                    {
                        bar.set_style(Self::style(true));
                        bar.set_length(*total);
                    }
                    bar.set_position(*done);
                    bar.set_message(format!("{unit} {message}"));
                }
                return;
            }
            RunEvent::StepFinished { step, .. }
            | RunEvent::StepFailed { step, .. }
            | RunEvent::StepRetrying { step, .. } => {
                if let Some(bar) = bars.remove(step) {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
        if let Some(line) = line_for(&event) {
            let _ = self.multi.println(line);
        }
    }
}
