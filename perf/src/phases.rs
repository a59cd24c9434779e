//! Where the harness's wall time goes: each phase's time summed over the
//! run, printed at the end, so the next change to `make bench` can aim
//! at the phase that costs the most.

use std::time::{Duration, Instant};

/// Wall time per phase, in the order the phases first appear.
#[derive(Debug, Default)]
pub struct Phases {
    phases: Vec<Phase>,
}

#[derive(Debug)]
struct Phase {
    name: String,
    total: Duration,
    count: u32,
}

impl Phases {
    /// Adds `d` to phase `name` (one more occurrence of it).
    pub fn add(&mut self, name: &str, d: Duration) {
        match self.phases.iter_mut().find(|p| p.name == name) {
            Some(p) => {
                p.total += d;
                p.count += 1;
            }
            None => self.phases.push(Phase {
                name: name.to_owned(),
                total: d,
                count: 1,
            }),
        }
    }

    /// Runs `f` and adds its wall time to phase `name`.
    pub fn time<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        let t0 = Instant::now();
        let v = f();
        self.add(name, t0.elapsed());
        v
    }

    /// The table: each phase's total, how many times it ran and its share
    /// of `whole`, then what no phase accounts for.
    pub fn summary(&self, whole: Duration) -> String {
        let mut s = format!(
            "{:<34} {:>9} {:>6} {:>6}\n",
            "phase", "seconds", "times", "share"
        );
        let mut counted = Duration::ZERO;
        let share = |d: Duration| 100.0 * d.as_secs_f64() / whole.as_secs_f64().max(1e-9);
        for p in &self.phases {
            counted += p.total;
            s += &format!(
                "{:<34} {:>9.1} {:>6} {:>5.1}%\n",
                p.name,
                p.total.as_secs_f64(),
                p.count,
                share(p.total)
            );
        }
        let rest = whole.saturating_sub(counted);
        s += &format!(
            "{:<34} {:>9.1} {:>6} {:>5.1}%\n",
            "(other)",
            rest.as_secs_f64(),
            "",
            share(rest)
        );
        s += &format!("{:<34} {:>9.1}\n", "total", whole.as_secs_f64());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_sum_by_name_in_first_seen_order() {
        let mut p = Phases::default();
        p.add("b", Duration::from_secs(2));
        p.add("a", Duration::from_secs(1));
        p.add("b", Duration::from_secs(3));
        let s = p.summary(Duration::from_secs(10));
        let lines: Vec<&str> = s.lines().collect();
        assert!(
            lines[1].starts_with("b ") && lines[1].contains("5.0") && lines[1].contains("50.0%")
        );
        assert!(lines[2].starts_with("a ") && lines[2].contains("1.0"));
        assert!(lines[3].starts_with("(other)") && lines[3].contains("4.0"));
        assert!(lines[4].starts_with("total") && lines[4].contains("10.0"));
    }
}
