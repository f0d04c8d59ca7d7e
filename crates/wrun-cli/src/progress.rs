//! Pull progress: a bar per layer on a terminal, one line per layer
//! otherwise, nothing with `-q`.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use wrun_image::Digest;
use wrun_image::pull::Progress;

pub fn for_pull(quiet: bool) -> Option<Arc<dyn Progress>> {
    if quiet {
        None
    } else if std::io::stderr().is_terminal() {
        Some(Arc::new(Bars::default()))
    } else {
        Some(Arc::new(Lines))
    }
}

struct Lines;

impl Progress for Lines {
    fn resumed(&self, digest: &Digest, offset: u64) {
        eprintln!("{}: resuming after {offset} bytes", digest.short());
    }

    fn finish(&self, digest: &Digest, cached: bool) {
        let what = if cached { "already present" } else { "pulled" };
        eprintln!("{}: {what}", digest.short());
    }
}

#[derive(Default)]
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Progress for Bars {
    fn start(&self, digest: &Digest, size: u64) {
        self.multi.set_draw_target(ProgressDrawTarget::stderr());
        let bar = self.multi.add(ProgressBar::new(size));
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(digest.short().to_string());
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(digest.clone(), bar);
        }
    }

    fn resumed(&self, digest: &Digest, offset: u64) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(digest).cloned()) {
            bar.set_position(offset);
        }
    }

    fn advance(&self, digest: &Digest, bytes: u64) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(digest).cloned()) {
            bar.inc(bytes);
        }
    }

    fn finish(&self, digest: &Digest, cached: bool) {
        let bar = self.bars.lock().ok().and_then(|mut b| b.remove(digest));
        match bar {
            Some(bar) => bar.finish_with_message("done"),
            None if cached => {
                let _ = self
                    .multi
                    .println(format!("{}: already present", digest.short()));
            }
            None => {}
        }
    }
}
