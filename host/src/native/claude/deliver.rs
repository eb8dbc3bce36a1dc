//! Typing a message into Claude and knowing it arrived: wait for the composer, paste the text (one bracketed
//! paste: no key in it is interpreted), press Enter once the draft shows, and count it delivered only when
//! Claude's UserPromptSubmit hook reports the same text. While the draft still sits in the composer Enter is
//! pressed again; without a confirmation the delivery fails loudly (and the composer is cleared).

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::screen::composer;
use crate::native::bridge::HookCall;
use crate::native::message::{normalize, same};
use crate::native::tmux::Tmux;

/// How long each step may take.
#[derive(Clone, Debug)]
pub struct Timing {
    /// For the composer to appear (Claude starts in about 2 s; a first start may install things).
    pub ready: Duration,
    /// For the pasted draft to show before Enter.
    pub draft: Duration,
    /// Waits for the confirmation, each followed by another Enter if the draft still sits there.
    pub retries: Vec<Duration>,
    /// Between screen reads.
    pub poll: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ready: Duration::from_secs(90),
            draft: Duration::from_secs(5),
            retries: [2, 2, 4, 8].map(Duration::from_secs).to_vec(),
            poll: Duration::from_millis(10),
        }
    }
}

/// Why a message did not arrive.
#[derive(Debug, PartialEq)]
pub enum Undelivered {
    /// The turn was interrupted meanwhile.
    Interrupted,
    /// The CLI is gone.
    Exited,
    /// The composer never appeared; the screen as it was.
    NotReady(String),
    /// Claude never confirmed the message; the screen as it was.
    NotConfirmed(String),
    /// tmux failed.
    Failed(String),
}

/// Delivers `text`. Hook reports that are not the confirmation are kept in `held`, in order, for the turn.
pub async fn deliver(
    tmux: &Tmux,
    text: &str,
    reports: &mut mpsc::UnboundedReceiver<HookCall>,
    cancel: &CancellationToken,
    timing: &Timing,
    held: &mut Vec<HookCall>,
) -> Result<(), Undelivered> {
    let text = normalize(text);
    wait_ready(tmux, cancel, timing).await?;
    tmux.paste(&text).await.map_err(|e| Undelivered::Failed(format!("pasting the message failed: {e}")))?;
    // The draft must be in the composer before Enter submits it.
    let shown = Instant::now();
    while shown.elapsed() < timing.draft {
        if tmux.capture(false).await.ok().and_then(|s| composer(&s)).is_some_and(|d| !d.is_empty()) {
            break;
        }
        tokio::time::sleep(timing.poll).await;
    }
    tmux.keys(&["Enter"]).await.map_err(|e| Undelivered::Failed(format!("pressing Enter failed: {e}")))?;
    for (attempt, wait) in timing.retries.iter().enumerate() {
        let until = tokio::time::Instant::now() + *wait;
        loop {
            let report = tokio::select! {
                r = reports.recv() => r,
                _ = tokio::time::sleep_until(until) => None,
                _ = cancel.cancelled() => return Err(Undelivered::Interrupted),
            };
            let Some(report) = report else { break };
            if report.event == "UserPromptSubmit" && report.body["prompt"].as_str().is_some_and(|p| same(p, &text)) {
                return Ok(());
            }
            held.push(report);
        }
        if pane_dead(tmux).await {
            return Err(Undelivered::Exited);
        }
        let screen = tmux.capture(false).await.unwrap_or_default();
        match composer(&screen) {
            Some(draft) if !draft.is_empty() => {
                tracing::info!(attempt, "the message still sits in Claude's composer; pressing Enter again");
                let _ = tmux.keys(&["Enter"]).await;
            }
            // Left the composer but not confirmed yet: Claude may be slow to run its hook.
            Some(_) => {}
            None => tracing::info!("a dialog covers Claude's composer while delivering"),
        }
    }
    let screen = tmux.capture(false).await.unwrap_or_default();
    // Clear the composer so the text is not glued to the next message.
    let _ = tmux.keys(&["Escape"]).await;
    Err(Undelivered::NotConfirmed(screen))
}

/// Waits until the composer is on screen.
async fn wait_ready(tmux: &Tmux, cancel: &CancellationToken, timing: &Timing) -> Result<(), Undelivered> {
    let started = Instant::now();
    loop {
        let screen = tmux.capture(false).await.unwrap_or_default();
        if composer(&screen).is_some() {
            return Ok(());
        }
        if pane_dead(tmux).await {
            return Err(Undelivered::Exited);
        }
        if started.elapsed() > timing.ready {
            return Err(Undelivered::NotReady(screen));
        }
        tokio::select! {
            _ = tokio::time::sleep(timing.poll.max(Duration::from_millis(10)) * 10) => {}
            _ = cancel.cancelled() => return Err(Undelivered::Interrupted),
        }
    }
}

/// Whether the CLI's pane is dead (or its tmux server gone).
pub async fn pane_dead(tmux: &Tmux) -> bool {
    match tmux.pane().await {
        Ok(p) => p.dead,
        Err(_) => !tmux.alive().await,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use futures::future::BoxFuture;
    use serde_json::json;

    use super::*;
    use crate::native::tmux::{Runner, TmuxError};

    const RULE: &str = "────────────────────────────────────────";

    fn composer_with(draft: &str) -> String {
        format!("{RULE}\n❯ {draft}\n{RULE}\n")
    }

    /// A tmux that answers screen reads from a script (the last screen repeats) and records every command.
    #[derive(Default)]
    struct Scripted {
        screens: Mutex<VecDeque<String>>,
        last: Mutex<String>,
        calls: Mutex<Vec<Vec<String>>>,
        dead: AtomicBool,
    }

    impl Runner for Scripted {
        fn run(&self, args: Vec<String>, _: Option<Vec<u8>>) -> BoxFuture<'static, Result<String, TmuxError>> {
            self.calls.lock().unwrap().push(args.clone());
            let out = match args[0].as_str() {
                "capture-pane" => {
                    if let Some(next) = self.screens.lock().unwrap().pop_front() {
                        *self.last.lock().unwrap() = next;
                    }
                    self.last.lock().unwrap().clone()
                }
                "list-panes" => {
                    if self.dead.load(Ordering::SeqCst) { "1 0 42 120 40" } else { "0 0 42 120 40" }.to_string()
                }
                _ => String::new(),
            };
            Box::pin(async move { Ok(out) })
        }
    }

    impl Scripted {
        fn with_screens(screens: &[String]) -> Arc<Scripted> {
            let s = Scripted::default();
            s.screens.lock().unwrap().extend(screens.iter().cloned());
            Arc::new(s)
        }

        fn enters(&self) -> usize {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.contains(&"send-keys".into()) && c.last().unwrap() == "Enter")
                .count()
        }

        fn pressed(&self, key: &str) -> bool {
            self.calls.lock().unwrap().iter().any(|c| c.contains(&"send-keys".into()) && c.last().unwrap() == key)
        }
    }

    fn fast() -> Timing {
        Timing {
            ready: Duration::from_millis(300),
            draft: Duration::from_millis(50),
            retries: vec![Duration::from_millis(40); 3],
            poll: Duration::from_millis(1),
        }
    }

    fn confirmation(text: &str) -> HookCall {
        HookCall { event: "UserPromptSubmit".into(), body: json!({"prompt": text}) }
    }

    #[tokio::test]
    async fn a_confirmed_message_needs_one_enter_and_keeps_other_reports() {
        let fake = Scripted::with_screens(&[composer_with(""), composer_with("[Pasted text #1]")]);
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send(HookCall { event: "MessageDisplay".into(), body: json!({}) }).unwrap();
        tx.send(confirmation("hello\r\nworld")).unwrap();
        let mut held = Vec::new();
        let tmux = Tmux::scripted(fake.clone());
        let r = deliver(&tmux, "hello\nworld", &mut rx, &CancellationToken::new(), &fast(), &mut held).await;
        assert_eq!(r, Ok(()));
        assert_eq!(fake.enters(), 1);
        assert_eq!(held.len(), 1, "the other report is the turn's");
        assert!(fake.calls.lock().unwrap().iter().any(|c| c[0] == "load-buffer"), "pasted, not typed");
    }

    #[tokio::test]
    async fn enter_is_pressed_again_while_the_draft_sits_in_the_composer() {
        let fake = Scripted::with_screens(&[composer_with(""), composer_with("hello")]);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let watcher = fake.clone();
        tokio::spawn(async move {
            while watcher.enters() < 2 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            tx.send(confirmation("hello")).unwrap();
        });
        let tmux = Tmux::scripted(fake.clone());
        let r = deliver(&tmux, "hello", &mut rx, &CancellationToken::new(), &fast(), &mut Vec::new()).await;
        assert_eq!(r, Ok(()));
        assert_eq!(fake.enters(), 2);
    }

    #[tokio::test]
    async fn no_confirmation_fails_loudly_and_clears_the_composer() {
        let fake = Scripted::with_screens(&[composer_with(""), composer_with("hello")]);
        let (_tx, mut rx) = mpsc::unbounded_channel();
        let tmux = Tmux::scripted(fake.clone());
        let r = deliver(&tmux, "hello", &mut rx, &CancellationToken::new(), &fast(), &mut Vec::new()).await;
        assert!(matches!(r, Err(Undelivered::NotConfirmed(ref screen)) if screen.contains("hello")), "{r:?}");
        assert_eq!(fake.enters(), 1 + fast().retries.len(), "one Enter, then one per retry");
        assert!(fake.pressed("Escape"));
    }

    #[tokio::test]
    async fn a_draft_that_left_the_composer_is_not_submitted_twice() {
        let fake = Scripted::with_screens(&[composer_with(""), composer_with("hello"), composer_with("")]);
        let (_tx, mut rx) = mpsc::unbounded_channel();
        let tmux = Tmux::scripted(fake.clone());
        let r = deliver(&tmux, "hello", &mut rx, &CancellationToken::new(), &fast(), &mut Vec::new()).await;
        assert!(matches!(r, Err(Undelivered::NotConfirmed(_))));
        assert_eq!(fake.enters(), 1, "Claude took the draft; it only did not confirm");
    }

    #[tokio::test]
    async fn a_dialog_that_never_goes_is_not_ready_and_a_dead_pane_has_exited() {
        let fake = Scripted::with_screens(&["Do you want to proceed?\n❯ 1. Yes\n".to_string()]);
        let (_tx, mut rx) = mpsc::unbounded_channel();
        let tmux = Tmux::scripted(fake.clone());
        let r = deliver(&tmux, "hi", &mut rx, &CancellationToken::new(), &fast(), &mut Vec::new()).await;
        assert!(matches!(r, Err(Undelivered::NotReady(ref s)) if s.contains("Do you want")), "{r:?}");
        assert!(!fake.calls.lock().unwrap().iter().any(|c| c[0] == "load-buffer"), "nothing pasted over a dialog");
        fake.dead.store(true, Ordering::SeqCst);
        let r = deliver(&tmux, "hi", &mut rx, &CancellationToken::new(), &fast(), &mut Vec::new()).await;
        assert_eq!(r, Err(Undelivered::Exited));
    }

    #[tokio::test]
    async fn an_interrupt_stops_the_wait() {
        let fake = Scripted::with_screens(&[composer_with(""), composer_with("hello")]);
        let (_tx, mut rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let tmux = Tmux::scripted(fake);
        let r = deliver(&tmux, "hello", &mut rx, &cancel, &fast(), &mut Vec::new()).await;
        assert_eq!(r, Err(Undelivered::Interrupted));
    }
}
