//! How progress looks: `indicatif` bars when stderr is a terminal, one plain line per finished
//! item otherwise (a CI log), nothing with `-q`. `NO_COLOR` turns the bars' colours off.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::GlobalArgs;
use crate::progress::{NoProgress, Reporter, Stage};

/// The reporter the flags and the terminal call for.
pub fn reporter(global: &GlobalArgs) -> Box<dyn Reporter> {
    if global.quiet {
        Box::new(NoProgress)
    } else if std::io::stderr().is_terminal() {
        Box::new(Bars::new(std::env::var_os("NO_COLOR").is_none()))
    } else {
        Box::new(Lines::default())
    }
}

/// A line on stderr when an item is done, with its size.
#[derive(Default)]
struct Lines {
    bytes: Mutex<HashMap<(Stage, String), u64>>,
}

impl Reporter for Lines {
    fn advanced(&self, stage: Stage, what: &str, bytes: u64) {
        if let Ok(mut map) = self.bytes.lock() {
            *map.entry((stage, what.to_string())).or_default() += bytes;
        }
    }

    fn finished(&self, stage: Stage, what: &str) {
        let bytes = self
            .bytes
            .lock()
            .ok()
            .and_then(|mut map| map.remove(&(stage, what.to_string())))
            .unwrap_or(0);
        let verb = match stage {
            Stage::Download => "Downloaded",
            Stage::Layer => "Wrote layer",
            Stage::Upload => "Uploaded",
        };
        eprintln!("{verb} {what} ({})", HumanBytes(bytes));
    }
}

/// One bar per item in flight, cleared when the item is done.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<(Stage, String), ProgressBar>>,
    bytes_style: ProgressStyle,
    spinner_style: ProgressStyle,
}

impl Bars {
    fn new(colour: bool) -> Bars {
        let (bar, spinner) = if colour {
            (
                "{prefix:>11.cyan.bold} {wide_msg} {bytes:>10}/{total_bytes:10} {bar:24.cyan/blue}",
                "{prefix:>11.cyan.bold} {wide_msg} {spinner}",
            )
        } else {
            (
                "{prefix:>11} {wide_msg} {bytes:>10}/{total_bytes:10} {bar:24}",
                "{prefix:>11} {wide_msg} {spinner}",
            )
        };
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
            bytes_style: ProgressStyle::with_template(bar)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            spinner_style: ProgressStyle::with_template(spinner)
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        }
    }
}

impl Reporter for Bars {
    fn started(&self, stage: Stage, what: &str, total_bytes: Option<u64>) {
        let bar = match total_bytes {
            Some(total) => ProgressBar::new(total).with_style(self.bytes_style.clone()),
            None => ProgressBar::new_spinner().with_style(self.spinner_style.clone()),
        };
        let prefix = match stage {
            Stage::Download => "Downloading",
            Stage::Layer => "Writing",
            Stage::Upload => "Uploading",
        };
        let bar = self
            .multi
            .add(bar.with_prefix(prefix).with_message(what.to_string()));
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert((stage, what.to_string()), bar);
        }
    }

    fn advanced(&self, stage: Stage, what: &str, bytes: u64) {
        if let Ok(bars) = self.bars.lock()
            && let Some(bar) = bars.get(&(stage, what.to_string()))
        {
            bar.inc(bytes);
        }
    }

    fn finished(&self, stage: Stage, what: &str) {
        let bar = self
            .bars
            .lock()
            .ok()
            .and_then(|mut bars| bars.remove(&(stage, what.to_string())));
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}
