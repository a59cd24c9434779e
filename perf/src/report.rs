//! Results: the JSON file, a Markdown table and a PNG chart.

use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// Where the figures came from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    pub dpdk: String,
    pub date: String,
}

/// How the figures were taken.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Settings {
    pub runs: usize,
    pub warmup_s: u64,
    pub measure_s: u64,
    pub mbufs: u32,
    pub lcores: String,
    pub method: String,
}

/// One scenario's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub name: String,
    pub title: String,
    /// Mpps of each run, by the wall clock.
    pub testpmd_mpps: Vec<f64>,
    pub sluice_mpps: Vec<f64>,
    pub testpmd_median: Option<f64>,
    pub sluice_median: Option<f64>,
    /// Sluice / testpmd, of the medians: the figure the targets judge.
    pub ratio: Option<f64>,
    /// Mpps per CPU-second the worker thread got, each run: on a shared
    /// machine this discounts time the worker was preempted.
    pub testpmd_cpu_mpps: Vec<f64>,
    pub sluice_cpu_mpps: Vec<f64>,
    pub testpmd_cpu_median: Option<f64>,
    pub sluice_cpu_median: Option<f64>,
    pub cpu_ratio: Option<f64>,
    pub target_ratio: Option<f64>,
    pub target_mpps: Option<f64>,
    /// Whether every target of the scenario was met (`None`: no target,
    /// or not measured).
    pub met: Option<bool>,
    /// Load average (1, 5, 15 min) before and after the scenario.
    pub load_before: String,
    pub load_after: String,
    /// Sluice's total counters at the end of the last measured interval.
    pub sluice_counters: Vec<(String, u64)>,
    pub accounting: String,
    /// Why a figure is missing, or what to know about it.
    pub notes: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    pub machine: Machine,
    pub settings: Settings,
    pub scenarios: Vec<ScenarioResult>,
}

/// Median of the figures (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

impl ScenarioResult {
    /// Fills medians, ratio and whether the targets were met.
    pub fn finish(&mut self) {
        self.testpmd_median = median(&self.testpmd_mpps);
        self.sluice_median = median(&self.sluice_mpps);
        let ratio = |s: Option<f64>, t: Option<f64>| match (s, t) {
            (Some(s), Some(t)) if t > 0.0 => Some(s / t),
            _ => None,
        };
        self.ratio = ratio(self.sluice_median, self.testpmd_median);
        self.testpmd_cpu_median = median(&self.testpmd_cpu_mpps);
        self.sluice_cpu_median = median(&self.sluice_cpu_mpps);
        self.cpu_ratio = ratio(self.sluice_cpu_median, self.testpmd_cpu_median);
        let mut met = None;
        if let (Some(want), Some(r)) = (self.target_ratio, self.ratio) {
            met = Some(r >= want);
        }
        if let (Some(want), Some(m)) = (self.target_mpps, self.sluice_median) {
            met = Some(met.unwrap_or(true) && m >= want);
        }
        self.met = met;
    }
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".to_owned(), |x| format!("{x:.digits$}"))
}

/// The results as a Markdown table.
pub fn markdown(r: &Results) -> String {
    let mut s = String::from(
        "| scenario | testpmd io Mpps | Sluice Mpps | Sluice / testpmd | target | met? | per worker CPU-second: testpmd / Sluice Mpps (ratio) | load (1/5/15 min) |\n|---|---:|---:|---:|---|---|---|---|\n",
    );
    for x in &r.scenarios {
        // Each target with its own verdict: one scenario can meet its
        // per-worker rate and miss its ratio.
        let verdict = |ok: bool| if ok { "yes" } else { "**no**" };
        let (mut target, mut met) = (Vec::new(), Vec::new());
        if let Some(t) = x.target_ratio {
            target.push(format!("≥ {t}×"));
            met.push(verdict(x.ratio.is_some_and(|r| r >= t)));
        }
        if let Some(t) = x.target_mpps {
            target.push(format!("≥ {t} Mpps"));
            met.push(verdict(x.sluice_median.is_some_and(|m| m >= t)));
        }
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} / {} ({}) | {} → {} |\n",
            x.title,
            fmt(x.testpmd_median, 2),
            fmt(x.sluice_median, 2),
            fmt(x.ratio, 3),
            if target.is_empty() {
                "—".to_owned()
            } else {
                target.join(", ")
            },
            if met.is_empty() {
                "—".to_owned()
            } else {
                met.join(", ")
            },
            fmt(x.testpmd_cpu_median, 2),
            fmt(x.sluice_cpu_median, 2),
            fmt(x.cpu_ratio, 3),
            x.load_before,
            x.load_after
        ));
    }
    s
}

/// Candidate fonts for the chart's text; the first that exists is used.
const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a system font for plotters' text (pure-Rust rendering).
/// Returns false when none is found: the chart then has no text.
fn register_font() -> bool {
    for f in FONTS {
        if let Ok(bytes) = std::fs::read(f) {
            // plotters keeps a 'static reference: the font lives for the
            // rest of this short-lived process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

/// A grouped bar chart: testpmd and Sluice Mpps per scenario, with the ratio.
pub fn chart(r: &Results, path: &Path) -> Result<(), String> {
    let text = register_font();
    let n = r.scenarios.len().max(1);
    let top = r
        .scenarios
        .iter()
        .flat_map(|x| [x.testpmd_median, x.sluice_median])
        .flatten()
        .fold(1.0f64, f64::max)
        * 1.15;
    let root = BitMapBackend::new(path, (1400, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut b = ChartBuilder::on(&root);
    b.margin(20);
    if text {
        b.caption(
            format!(
                "Sluice vs dpdk-testpmd io, one worker lcore ({})",
                r.machine.cpu
            ),
            ("sans-serif", 22),
        )
        .x_label_area_size(120)
        .y_label_area_size(60);
    }
    let mut c = b
        .build_cartesian_2d(0f64..n as f64, 0f64..top)
        .map_err(|e| e.to_string())?;
    if text {
        c.configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .y_desc("Mpps")
            .draw()
            .map_err(|e| e.to_string())?;
    }
    let tp = RGBColor(120, 120, 120);
    let sl = RGBColor(30, 110, 200);
    for (i, x) in r.scenarios.iter().enumerate() {
        let i = i as f64;
        if let Some(v) = x.testpmd_median {
            c.draw_series(std::iter::once(Rectangle::new(
                [(i + 0.1, 0.0), (i + 0.48, v)],
                tp.filled(),
            )))
            .map_err(|e| e.to_string())?;
        }
        if let Some(v) = x.sluice_median {
            c.draw_series(std::iter::once(Rectangle::new(
                [(i + 0.52, 0.0), (i + 0.9, v)],
                sl.filled(),
            )))
            .map_err(|e| e.to_string())?;
        }
        if text {
            let label = match x.ratio {
                Some(q) => format!("{q:.2}×"),
                None => "n/a".to_owned(),
            };
            let y = x
                .testpmd_median
                .unwrap_or(0.0)
                .max(x.sluice_median.unwrap_or(0.0));
            c.draw_series(std::iter::once(Text::new(
                label,
                (i + 0.3, y + top * 0.02),
                ("sans-serif", 16).into_font(),
            )))
            .map_err(|e| e.to_string())?;
            c.draw_series(std::iter::once(Text::new(
                x.name.clone(),
                (i + 0.05, -top * 0.04),
                ("sans-serif", 15).into_font(),
            )))
            .map_err(|e| e.to_string())?;
        }
    }
    if text {
        c.draw_series(std::iter::once(Rectangle::new(
            [(n as f64 - 1.6, top * 0.97), (n as f64 - 1.5, top * 0.93)],
            tp.filled(),
        )))
        .map_err(|e| e.to_string())?
        .label("testpmd io");
        c.draw_series(std::iter::once(Rectangle::new(
            [(n as f64 - 1.6, top * 0.91), (n as f64 - 1.5, top * 0.87)],
            sl.filled(),
        )))
        .map_err(|e| e.to_string())?
        .label("Sluice");
        c.draw_series(std::iter::once(Text::new(
            "testpmd io".to_owned(),
            (n as f64 - 1.45, top * 0.97),
            ("sans-serif", 16).into_font(),
        )))
        .map_err(|e| e.to_string())?;
        c.draw_series(std::iter::once(Text::new(
            "Sluice (ratio above the bars)".to_owned(),
            (n as f64 - 1.45, top * 0.91),
            ("sans-serif", 16).into_font(),
        )))
        .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_ratio_and_targets() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let mut x = ScenarioResult {
            testpmd_mpps: vec![10.0, 12.0, 11.0],
            sluice_mpps: vec![5.0, 6.0, 4.0],
            target_ratio: Some(0.5),
            target_mpps: Some(14.88),
            ..Default::default()
        };
        x.finish();
        assert_eq!(x.ratio, Some(5.0 / 11.0));
        assert_eq!(x.met, Some(false));
        x.target_mpps = None;
        x.sluice_mpps = vec![6.0];
        x.finish();
        assert_eq!(x.met, Some(true));
    }

    #[test]
    fn markdown_gives_each_target_its_own_verdict() {
        let mut x = ScenarioResult {
            title: "full".into(),
            testpmd_mpps: vec![90.0],
            sluice_mpps: vec![16.0],
            target_ratio: Some(0.5),
            target_mpps: Some(14.88),
            ..Default::default()
        };
        x.finish();
        let md = markdown(&Results {
            scenarios: vec![x],
            ..Default::default()
        });
        assert!(
            md.contains("| ≥ 0.5×, ≥ 14.88 Mpps | **no**, yes |"),
            "{md}"
        );
    }
}
