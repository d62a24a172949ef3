//! Start-up progress: a spinner on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub enum Progress {
    Bar(ProgressBar),
    Plain { last: String },
}

impl Progress {
    /// A spinner when stderr is a terminal.
    pub fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress::Plain {
                last: String::new(),
            };
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed}] {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress::Bar(bar)
    }

    /// The current state; plain output prints only changes.
    pub fn set(&mut self, msg: &str) {
        match self {
            Progress::Bar(bar) => bar.set_message(msg.to_owned()),
            Progress::Plain { last } if last != msg => {
                eprintln!("{msg}");
                *last = msg.to_owned();
            }
            Progress::Plain { .. } => {}
        }
    }

    /// A line that stays (a step done).
    pub fn line(&self, msg: &str) {
        match self {
            Progress::Bar(bar) => bar.println(msg),
            Progress::Plain { .. } => eprintln!("{msg}"),
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
