//! The controller session as the console shows it (`show controller`, a
//! line of `show state`): up or down, since when and why, how many attempts
//! failed, and whether the last acked policy reached the disk. The agent
//! thread does the work; the main loop records its events here.

use std::fmt::Write;
use std::time::{Duration, Instant};

use super::Appliance;

/// Where the session stands, from the agent's events.
#[derive(Debug)]
pub(super) struct Session {
    state: SessionState,
    since: Instant,
}

#[derive(Debug)]
enum SessionState {
    /// No event yet: the first attempt is under way.
    Connecting,
    Up {
        controller: String,
    },
    Down {
        reason: String,
        retry_in: Duration,
    },
}

impl Default for Session {
    fn default() -> Self {
        Session {
            state: SessionState::Connecting,
            since: Instant::now(),
        }
    }
}

impl Session {
    pub(super) fn up(&mut self, controller: String) {
        self.state = SessionState::Up { controller };
        self.since = Instant::now();
    }

    /// A session ended or an attempt failed. A failed retry keeps the time
    /// the session went down.
    pub(super) fn down(&mut self, reason: String, retry_in: Duration) {
        if !matches!(self.state, SessionState::Down { .. }) {
            self.since = Instant::now();
        }
        self.state = SessionState::Down { reason, retry_in };
    }
}

impl Appliance {
    /// `show controller`.
    pub(super) fn show_controller(&self) -> String {
        let (Some(agent), Some(c)) = (&self.agent, &self.cfg.controller) else {
            return "  no controller configured: the policy comes from the command line or the built-in default\n".into();
        };
        let st = &agent.status;
        let n = st.counters();
        let mut s = format!(
            "  controller: {} (server name {})\n",
            c.address,
            c.server_name()
        );
        let ago = self.controller_session.since.elapsed().as_secs();
        let _ = match &self.controller_session.state {
            SessionState::Connecting => writeln!(s, "  session: connecting"),
            SessionState::Up { controller } => {
                writeln!(s, "  session: up for {ago} s ({controller})")
            }
            SessionState::Down { reason, retry_in } => writeln!(
                s,
                "  session: down for {ago} s: {reason}; next attempt in {} ms; forwarding goes on",
                retry_in.as_millis()
            ),
        };
        let _ = writeln!(
            s,
            "  sessions: {}  failed attempts: {}",
            n.sessions, n.connect_failures
        );
        let _ = writeln!(
            s,
            "  policy: {:?} (controller version {})",
            self.policy.version,
            self.controller_version.as_deref().unwrap_or("none")
        );
        let _ = writeln!(
            s,
            "  persist: {}: {} write(s), {} failure(s){}",
            c.persist.display(),
            n.persist_writes,
            n.persist_failures,
            match st.persist_error() {
                Some(e) => format!(
                    "; the last write failed: {e} (the file on disk is the last policy written)"
                ),
                None => String::new(),
            }
        );
        s
    }

    /// `show state`'s line on the session, when there is a controller.
    pub(super) fn controller_state_line(&self) -> String {
        let Some(agent) = &self.agent else {
            return String::new();
        };
        let n = agent.status.counters();
        let state = match &self.controller_session.state {
            SessionState::Connecting => "connecting",
            SessionState::Up { .. } => "up",
            SessionState::Down { .. } => "down",
        };
        format!(
            "  controller session: {state} ({} session(s), {} failed attempt(s); show controller)\n",
            n.sessions, n.connect_failures
        )
    }
}
