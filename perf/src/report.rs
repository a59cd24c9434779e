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
    /// Measured intervals per program run (one start for all of them).
    pub intervals: usize,
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
    /// The input capture: its name, distinct flows, frame sizes, frames.
    pub capture: String,
    pub flows: u64,
    pub frames: String,
    pub capture_frames: u64,
    /// Mbufs in each program's pool (the capture lives in it).
    pub mbufs: u32,
    /// What the OVS-DPDK peer did on the same capture, if it ran.
    pub peer: Option<String>,
    /// Mpps of each run, by the wall clock.
    pub testpmd_mpps: Vec<f64>,
    pub ovs_mpps: Vec<f64>,
    pub sluice_mpps: Vec<f64>,
    pub testpmd_median: Option<f64>,
    pub ovs_median: Option<f64>,
    pub sluice_median: Option<f64>,
    /// Sluice / testpmd, of the medians: the figure the targets judge.
    pub ratio: Option<f64>,
    /// Sluice / OVS-DPDK, of the medians.
    pub ratio_ovs: Option<f64>,
    /// Mpps per CPU-second the worker thread got, each run: on a shared
    /// machine this discounts time the worker was preempted.
    pub testpmd_cpu_mpps: Vec<f64>,
    pub ovs_cpu_mpps: Vec<f64>,
    pub sluice_cpu_mpps: Vec<f64>,
    pub testpmd_cpu_median: Option<f64>,
    pub ovs_cpu_median: Option<f64>,
    pub sluice_cpu_median: Option<f64>,
    pub cpu_ratio: Option<f64>,
    pub cpu_ratio_ovs: Option<f64>,
    pub target_ratio: Option<f64>,
    pub target_ovs: Option<f64>,
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
    /// Whether every Sluice run's exit report balanced (`rx = Σ terminal
    /// counters`); `None` if no run reported.
    pub balanced: Option<bool>,
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

/// Whether an exit report's accounting line (`accounting: rx N = sum of
/// terminal counters M (difference D)`) balances; `None` if it is not one.
pub fn balances(line: &str) -> Option<bool> {
    let d = line.split("(difference ").nth(1)?;
    let d = d.split(')').next()?.trim();
    Some(d.parse::<i64>().ok()? == 0)
}

/// What makes a run's results incomplete or wrong, one line each: an
/// exit report that did not balance (or never came), a scenario without
/// its Sluice or testpmd figure, a peer that was run and gave no figure.
/// The harness fails loudly on any of them.
pub fn failures(r: &Results) -> Vec<String> {
    let mut v = Vec::new();
    for x in &r.scenarios {
        match x.balanced {
            Some(true) => {}
            Some(false) => v.push(format!(
                "{}: an exit report did not balance (rx ≠ Σ terminal counters) or was missing: {}",
                x.name, x.accounting
            )),
            None => v.push(format!("{}: no Sluice run gave an exit report", x.name)),
        }
        if x.sluice_median.is_none() {
            v.push(format!("{}: no Sluice figure", x.name));
        }
        if x.testpmd_median.is_none() {
            v.push(format!("{}: no testpmd figure", x.name));
        }
        if x.peer.is_some() && x.ovs_median.is_none() {
            v.push(format!("{}: no OVS-DPDK figure", x.name));
        }
    }
    v
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
        self.ovs_median = median(&self.ovs_mpps);
        self.sluice_median = median(&self.sluice_mpps);
        let ratio = |s: Option<f64>, t: Option<f64>| match (s, t) {
            (Some(s), Some(t)) if t > 0.0 => Some(s / t),
            _ => None,
        };
        self.ratio = ratio(self.sluice_median, self.testpmd_median);
        self.ratio_ovs = ratio(self.sluice_median, self.ovs_median);
        self.testpmd_cpu_median = median(&self.testpmd_cpu_mpps);
        self.ovs_cpu_median = median(&self.ovs_cpu_mpps);
        self.sluice_cpu_median = median(&self.sluice_cpu_mpps);
        self.cpu_ratio = ratio(self.sluice_cpu_median, self.testpmd_cpu_median);
        self.cpu_ratio_ovs = ratio(self.sluice_cpu_median, self.ovs_cpu_median);
        let mut met = None;
        if let (Some(want), Some(r)) = (self.target_ratio, self.ratio) {
            met = Some(r >= want);
        }
        if let (Some(want), Some(r)) = (self.target_ovs, self.ratio_ovs) {
            met = Some(met.unwrap_or(true) && r >= want);
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

/// A capture as the tables name it: "1 Ki flows, 64 B".
fn capture_label(x: &ScenarioResult) -> String {
    let flows = match x.flows {
        0 => String::new(),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} Mi", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} Ki", n >> 10),
        n => n.to_string(),
    };
    format!("{flows} flows, {}", x.frames)
}

/// The results as a Markdown table: Mpps of the three programs on the
/// same capture, the two ratios, each target with its own verdict, and the
/// rates per CPU-second the worker got.
pub fn markdown(r: &Results) -> String {
    let mut s = String::from(
        "| scenario | capture | testpmd io | OVS-DPDK | Sluice | Sluice / testpmd | Sluice / OVS | target | met? | per worker CPU-second: testpmd / OVS / Sluice | load (1/5/15 min) |\n|---|---|---:|---:|---:|---:|---:|---|---|---|---|\n",
    );
    for x in &r.scenarios {
        // Each target with its own verdict: one scenario can meet one
        // ratio and miss the other.
        let verdict = |ok: bool| if ok { "yes" } else { "**no**" };
        let (mut target, mut met) = (Vec::new(), Vec::new());
        if let Some(t) = x.target_ratio {
            target.push(format!("≥ {t}× testpmd"));
            met.push(verdict(x.ratio.is_some_and(|r| r >= t)));
        }
        if let Some(t) = x.target_ovs {
            target.push(format!("≥ {t}× OVS"));
            met.push(verdict(x.ratio_ovs.is_some_and(|r| r >= t)));
        }
        if let Some(t) = x.target_mpps {
            target.push(format!("≥ {t} Mpps"));
            met.push(verdict(x.sluice_median.is_some_and(|m| m >= t)));
        }
        let join = |v: Vec<String>| {
            if v.is_empty() {
                "—".to_owned()
            } else {
                v.join(", ")
            }
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {} → {} |\n",
            x.title,
            capture_label(x),
            fmt(x.testpmd_median, 2),
            match &x.peer {
                Some(_) => fmt(x.ovs_median, 2),
                None => "—".to_owned(),
            },
            fmt(x.sluice_median, 2),
            fmt(x.ratio, 3),
            fmt(x.ratio_ovs, 2),
            join(target),
            join(met.into_iter().map(str::to_owned).collect()),
            fmt(x.testpmd_cpu_median, 2),
            fmt(x.ovs_cpu_median, 2),
            fmt(x.sluice_cpu_median, 2),
            x.load_before,
            x.load_after
        ));
    }
    let peers: Vec<String> = {
        let mut v: Vec<String> = r.scenarios.iter().filter_map(|x| x.peer.clone()).collect();
        v.dedup();
        v.sort();
        v.dedup();
        v
    };
    if !peers.is_empty() {
        s.push_str("\nOVS-DPDK's work, the peer of each scenario:\n\n| scenario | OVS-DPDK does |\n|---|---|\n");
        for x in &r.scenarios {
            if let Some(p) = &x.peer {
                s.push_str(&format!("| {} | {p} |\n", x.name));
            }
        }
    }
    let unbalanced: Vec<&str> = r
        .scenarios
        .iter()
        .filter(|x| x.balanced == Some(false))
        .map(|x| x.name.as_str())
        .collect();
    let reported = r.scenarios.iter().filter(|x| x.balanced.is_some()).count();
    if unbalanced.is_empty() {
        s.push_str(&format!(
            "\nEvery Sluice run's exit report balanced (rx = Σ terminal counters) in the {reported} scenarios that ran.\n"
        ));
    } else {
        s.push_str(&format!(
            "\n**Exit reports that did not balance** (rx ≠ Σ terminal counters): {}.\n",
            unbalanced.join(", ")
        ));
    }
    let notes: Vec<String> = r
        .scenarios
        .iter()
        .flat_map(|x| x.notes.iter().map(move |n| format!("- {}: {n}", x.name)))
        .collect();
    if !notes.is_empty() {
        s.push_str("\nNotes:\n\n");
        s.push_str(&notes.join("\n"));
        s.push('\n');
    }
    s
}

/// Marks around the part of `docs/PERFORMANCE.md` the harness writes.
pub const DOC_BEGIN: &str = "<!-- e2e results: written by `e2e --doc`, do not edit by hand -->";
pub const DOC_END: &str = "<!-- end of e2e results -->";

/// `doc` with the text between [`DOC_BEGIN`] and [`DOC_END`] replaced by
/// `body`; an error if the marks are missing or out of order.
pub fn splice(doc: &str, body: &str) -> Result<String, String> {
    let (Some(b), Some(e)) = (doc.find(DOC_BEGIN), doc.find(DOC_END)) else {
        return Err(format!(
            "the document has no {DOC_BEGIN:?} … {DOC_END:?} section to write the results in"
        ));
    };
    if e < b {
        return Err("the end mark comes before the begin mark".into());
    }
    let head = &doc[..b + DOC_BEGIN.len()];
    Ok(format!("{head}\n\n{}\n\n{}", body.trim_end(), &doc[e..]))
}

/// The section the harness writes into the document: when and where it
/// ran, and the table.
pub fn doc_section(r: &Results) -> String {
    format!(
        "Written by `e2e --doc` on {} ({}, {} cores, {}, {}); each program started once per capture, {} s warm-up, then {} intervals of {} s measured.\n\n{}",
        r.machine.date,
        r.machine.cpu,
        r.machine.cores,
        r.machine.kernel,
        r.machine.dpdk,
        r.settings.warmup_s,
        r.settings.intervals,
        r.settings.measure_s,
        markdown(r)
    )
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

/// A grouped bar chart: testpmd, OVS-DPDK and Sluice Mpps per scenario,
/// Sluice / testpmd above the bars.
pub fn chart(r: &Results, path: &Path) -> Result<(), String> {
    let text = register_font();
    let n = r.scenarios.len().max(1);
    let top = r
        .scenarios
        .iter()
        .flat_map(|x| [x.testpmd_median, x.ovs_median, x.sluice_median])
        .flatten()
        .fold(1.0f64, f64::max)
        * 1.15;
    let width = (160 + 56 * n as u32).max(900);
    let root = BitMapBackend::new(path, (width, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut b = ChartBuilder::on(&root);
    b.margin(20);
    if text {
        b.caption(
            format!(
                "Sluice vs dpdk-testpmd io and OVS-DPDK, one worker lcore ({})",
                r.machine.cpu
            ),
            ("sans-serif", 22),
        )
        .x_label_area_size(190)
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
    let colours = [
        ("testpmd io", RGBColor(120, 120, 120)),
        ("OVS-DPDK", RGBColor(230, 140, 30)),
        ("Sluice (Sluice / testpmd above)", RGBColor(30, 110, 200)),
    ];
    for (i, x) in r.scenarios.iter().enumerate() {
        let i = i as f64;
        for (k, v) in [x.testpmd_median, x.ovs_median, x.sluice_median]
            .into_iter()
            .enumerate()
        {
            if let Some(v) = v {
                let left = i + 0.08 + 0.28 * k as f64;
                c.draw_series(std::iter::once(Rectangle::new(
                    [(left, 0.0), (left + 0.26, v)],
                    colours[k].1.filled(),
                )))
                .map_err(|e| e.to_string())?;
            }
        }
        if text {
            let label = match x.ratio {
                Some(q) => format!("{q:.2}×"),
                None => "n/a".to_owned(),
            };
            let y = [x.testpmd_median, x.ovs_median, x.sluice_median]
                .into_iter()
                .flatten()
                .fold(0.0f64, f64::max);
            c.draw_series(std::iter::once(Text::new(
                label,
                (i + 0.1, y + top * 0.02),
                ("sans-serif", 13).into_font(),
            )))
            .map_err(|e| e.to_string())?;
            c.draw_series(std::iter::once(Text::new(
                x.name.clone(),
                (i + 0.35, -top * 0.02),
                ("sans-serif", 14)
                    .into_font()
                    .transform(FontTransform::Rotate90),
            )))
            .map_err(|e| e.to_string())?;
        }
    }
    if text {
        for (k, (name, colour)) in colours.iter().enumerate() {
            let y = top * (0.97 - 0.05 * k as f64);
            let x0 = n as f64 * 0.70;
            c.draw_series(std::iter::once(Rectangle::new(
                [(x0, y), (x0 + n as f64 * 0.015, y - top * 0.03)],
                colour.filled(),
            )))
            .map_err(|e| e.to_string())?;
            c.draw_series(std::iter::once(Text::new(
                (*name).to_owned(),
                (x0 + n as f64 * 0.02, y),
                ("sans-serif", 16).into_font(),
            )))
            .map_err(|e| e.to_string())?;
        }
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
        // A ratio to OVS: met only if both ratios are.
        x.ovs_mpps = vec![3.0, 2.0];
        x.target_ovs = Some(3.0);
        x.finish();
        assert_eq!(x.ratio_ovs, Some(6.0 / 2.5));
        assert_eq!(x.met, Some(false));
        x.target_ovs = Some(2.0);
        x.finish();
        assert_eq!(x.met, Some(true));
    }

    #[test]
    fn failures_name_every_missing_figure_and_unbalanced_report() {
        let whole = |name: &str| ScenarioResult {
            name: name.into(),
            peer: Some("in → out".into()),
            balanced: Some(true),
            sluice_median: Some(1.0),
            testpmd_median: Some(2.0),
            ovs_median: Some(0.5),
            ..Default::default()
        };
        let unbalanced = ScenarioResult {
            balanced: Some(false),
            ..whole("unbalanced")
        };
        let unreported = ScenarioResult {
            balanced: None,
            sluice_median: None,
            ..whole("unreported")
        };
        let no_peer = ScenarioResult {
            ovs_median: None,
            testpmd_median: None,
            ..whole("no-peer")
        };
        let r = Results {
            scenarios: vec![whole("ok"), unbalanced, unreported, no_peer],
            ..Default::default()
        };
        let f = failures(&r);
        assert_eq!(f.len(), 5, "{f:#?}");
        assert!(f[0].starts_with("unbalanced: an exit report did not balance"));
        assert_eq!(f[1], "unreported: no Sluice run gave an exit report");
        assert_eq!(f[2], "unreported: no Sluice figure");
        assert_eq!(f[3], "no-peer: no testpmd figure");
        assert_eq!(f[4], "no-peer: no OVS-DPDK figure");
    }

    #[test]
    fn accounting_lines() {
        let ok = "accounting: rx 2456192 = sum of terminal counters 2456192 (difference 0)";
        assert_eq!(balances(ok), Some(true));
        let bad = "accounting: rx 10 = sum of terminal counters 9 (difference 1)";
        assert_eq!(balances(bad), Some(false));
        assert_eq!(balances(""), None);
        let mut x = ScenarioResult {
            name: "a".into(),
            balanced: Some(false),
            ..Default::default()
        };
        x.finish();
        let md = markdown(&Results {
            scenarios: vec![x],
            ..Default::default()
        });
        assert!(
            md.contains("did not balance** (rx ≠ Σ terminal counters): a."),
            "{md}"
        );
    }

    #[test]
    fn splice_replaces_only_the_marked_section() {
        let doc = format!("# P\n\nbefore\n{DOC_BEGIN}\nold table\n{DOC_END}\nafter\n");
        let out = splice(&doc, "new table\n").unwrap();
        assert_eq!(
            out,
            format!("# P\n\nbefore\n{DOC_BEGIN}\n\nnew table\n\n{DOC_END}\nafter\n")
        );
        // Idempotent: splicing again gives the same document.
        assert_eq!(splice(&out, "new table").unwrap(), out);
        assert!(splice("# P\n", "x").unwrap_err().contains("no"));
        assert!(splice(&format!("{DOC_END}{DOC_BEGIN}"), "x").is_err());
    }

    #[test]
    fn markdown_has_the_peer_column_and_its_ratio() {
        let mut x = ScenarioResult {
            title: "full".into(),
            flows: 65_536,
            frames: "64 B".into(),
            peer: Some("rules".into()),
            testpmd_mpps: vec![50.0],
            ovs_mpps: vec![4.0],
            sluice_mpps: vec![12.0],
            target_ovs: Some(3.0),
            ..Default::default()
        };
        x.finish();
        let md = markdown(&Results {
            scenarios: vec![x],
            ..Default::default()
        });
        assert!(
            md.contains("| full | 64 Ki flows, 64 B | 50.00 | 4.00 | 12.00 | 0.240 | 3.00 | ≥ 3× OVS | yes |"),
            "{md}"
        );
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
            md.contains("| ≥ 0.5× testpmd, ≥ 14.88 Mpps | **no**, yes |"),
            "{md}"
        );
    }
}
