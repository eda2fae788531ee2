//! Which ended jobs are submitted again under the step's `retry`: those that
//! Slurm stopped from outside (preempted by a higher-priority job, on a node
//! that failed, out of time), never a step that failed on its own (`FAILED`,
//! `OUT_OF_MEMORY`: it would fail the same way). A job that ran out of time
//! gets twice the limit.

/// Slurm's end states that say nothing against the step itself.
const RETRIED_STATES: &[&str] = &["PREEMPTED", "NODE_FAIL", "TIMEOUT"];

/// What to do after a job ended in Slurm's `state`, having made `attempts`
/// attempts (this one included) of at most `max_retries + 1`, with time limit
/// `time` (as `sbatch --time` writes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Submit the step again, with this time limit.
    Resubmit { time: Option<String> },
    /// The step has failed.
    Fail,
}

pub(crate) fn decide(state: &str, attempts: u32, max_retries: u32, time: Option<&str>) -> Decision {
    if !RETRIED_STATES.contains(&state) || attempts > max_retries {
        return Decision::Fail;
    }
    let time = match (state, time) {
        ("TIMEOUT", Some(time)) => Some(double(time).unwrap_or_else(|| time.to_string())),
        (_, time) => time.map(str::to_string),
    };
    Decision::Resubmit { time }
}

/// Twice the time limit `time` (`30`, `30:00`, `4:00:00`, `1-12`, `1-12:00:00`),
/// written `D-HH:MM:SS`; None for a limit xp cannot read (`UNLIMITED`).
pub(crate) fn double(time: &str) -> Option<String> {
    let seconds = seconds(time)?.checked_mul(2)?;
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    Some(format!(
        "{days}-{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    ))
}

/// Seconds in a Slurm time limit. Without a day part: `M`, `M:S` or `H:M:S`;
/// with one: `D-H`, `D-H:M` or `D-H:M:S`.
fn seconds(time: &str) -> Option<u64> {
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (days, clock) = match time.split_once('-') {
        Some((days, clock)) => (Some(number(days)?), clock),
        None => (None, time),
    };
    let parts: Vec<u64> = clock.split(':').map(number).collect::<Option<_>>()?;
    let (h, m, s) = match (days.is_some(), parts.as_slice()) {
        (false, [m]) => (0, *m, 0),
        (false, [m, s]) => (0, *m, *s),
        (true, [h]) => (*h, 0, 0),
        (true, [h, m]) => (*h, *m, 0),
        (_, [h, m, s]) => (*h, *m, *s),
        _ => return None,
    };
    Some(days.unwrap_or(0) * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_outside_ends_are_retried_while_retries_last() {
        let resubmit = |time: &str| Decision::Resubmit {
            time: Some(time.to_string()),
        };
        // (state, attempts made, retry.max, time limit, decision)
        let cases = [
            ("PREEMPTED", 1, 2, "4:00:00", resubmit("4:00:00")),
            ("NODE_FAIL", 2, 2, "30", resubmit("30")),
            ("TIMEOUT", 1, 1, "4:00:00", resubmit("0-08:00:00")),
            ("TIMEOUT", 2, 3, "0-08:00:00", resubmit("0-16:00:00")),
            ("TIMEOUT", 1, 1, "1-12", resubmit("3-00:00:00")),
            ("PREEMPTED", 3, 2, "30", Decision::Fail),
            ("TIMEOUT", 1, 0, "30", Decision::Fail),
            ("FAILED", 1, 5, "30", Decision::Fail),
            ("OUT_OF_MEMORY", 1, 5, "30", Decision::Fail),
            ("BOOT_FAIL", 1, 5, "30", Decision::Fail),
            ("DEADLINE", 1, 5, "30", Decision::Fail),
        ];
        for (state, attempts, max, time, expected) in cases {
            assert_eq!(
                decide(state, attempts, max, Some(time)),
                expected,
                "{state} after {attempts} attempts, max {max}"
            );
        }
        assert_eq!(
            decide("PREEMPTED", 1, 1, None),
            Decision::Resubmit { time: None }
        );
        // A limit xp cannot read is kept as it is.
        assert_eq!(
            decide("TIMEOUT", 1, 1, Some("UNLIMITED")),
            resubmit("UNLIMITED")
        );
    }

    #[test]
    fn time_limits_double_in_every_slurm_format() {
        for (time, doubled) in [
            ("30", "0-01:00:00"),
            ("45:30", "0-01:31:00"),
            ("4:00:00", "0-08:00:00"),
            ("13:00:00", "1-02:00:00"),
            ("2-0", "4-00:00:00"),
            ("1-12:30", "3-01:00:00"),
            ("1-12:00:00", "3-00:00:00"),
        ] {
            assert_eq!(double(time).as_deref(), Some(doubled), "{time}");
        }
        for bad in ["", "UNLIMITED", "1:2:3:4", "1-", "-1", "a:00"] {
            assert_eq!(double(bad), None, "{bad}");
        }
    }
}
